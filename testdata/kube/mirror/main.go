// Command mirror stands in, for the lab, for the upstream download sites and registries
// that `sealflow package build` reads (the lab cannot reach them):
//
//	mirror images --bin DIR [--bin DIR ...] --out DIR
//	    assembles each upstream image (table in images.go) from the binaries built by
//	    testdata/kube/upstream.sh and writes them as an OCI layout, each image annotated
//	    with its reference.
//	mirror serve --www DIR --images DIR --addr-file FILE
//	    serves DIR over HTTP (Range requests work) and the layout's images from an OCI
//	    registry, both on 127.0.0.1 with ports of their own; writes
//	    {"http":"127.0.0.1:P","registry":"127.0.0.1:R"} to FILE once ready and runs until
//	    its stdin closes or it gets SIGTERM/SIGINT (--no-stdin: signals only).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

type dirs []string

func (d *dirs) String() string     { return strings.Join(*d, ",") }
func (d *dirs) Set(s string) error { *d = append(*d, s); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "images":
		err = imagesCmd(os.Args[2:])
	case "serve":
		err = serveCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mirror images --bin DIR... --out DIR | mirror serve --www DIR --images DIR --addr-file FILE [--no-stdin]")
	os.Exit(2)
}

func imagesCmd(args []string) error {
	fs := flag.NewFlagSet("images", flag.ExitOnError)
	var bin dirs
	fs.Var(&bin, "bin", "directory with the built binaries (repeatable, searched in order)")
	out := fs.String("out", "", "OCI layout directory to write")
	fs.Parse(args)
	if *out == "" || len(bin) == 0 {
		usage()
	}
	return writeLayout(*out, &builder{binDirs: bin}, images)
}

func serveCmd(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	www := fs.String("www", "", "directory served over HTTP")
	imgs := fs.String("images", "", "OCI layout whose images the registry serves")
	addrFile := fs.String("addr-file", "", "file to write the addresses to (JSON)")
	noStdin := fs.Bool("no-stdin", false, "do not stop when stdin closes")
	fs.Parse(args)
	if *www == "" || *addrFile == "" {
		usage()
	}
	m, err := startMirror(*www, *imgs)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := writeAddrs(*addrFile, m.addrs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mirror: http %s registry %s\n", m.HTTP, m.Registry)
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGTERM, syscall.SIGINT)
	if !*noStdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			done <- syscall.SIGHUP
		}()
	}
	<-done
	return nil
}
