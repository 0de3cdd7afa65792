package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sealflow/sealflow/internal/kubepkg"
)

// PackageBuildOptions are the inputs of `sealflow package build`.
type PackageBuildOptions struct {
	// ManifestFile is a package manifest; empty means the built-in one of Version.
	ManifestFile string
	Version      string
	Arch         string
	Mirrors      []string
	Out          string
	// Cache keeps verified downloads; empty means none.
	Cache           string
	SealflowBinary  string
	SealflowVersion string
}

// PackageBuild builds an offline package.
func PackageBuild(ctx context.Context, streams IO, o PackageBuildOptions) error {
	mirrors, err := kubepkg.ParseMirrors(o.Mirrors)
	if err != nil {
		return Invalid(err)
	}
	if o.Arch != "" && !slices.Contains(kubepkg.Arches, o.Arch) {
		return Invalidf("--arch %q: want one of %s", o.Arch, strings.Join(kubepkg.Arches, ", "))
	}
	var m *kubepkg.Manifest
	if o.ManifestFile != "" {
		data, err := readBounded(o.ManifestFile, 1<<20)
		if err != nil {
			return Invalid(err)
		}
		m, err = kubepkg.ParseManifest(o.ManifestFile, data, o.Arch)
		if err != nil {
			return Invalid(err)
		}
		if o.Version != "" && o.Version != m.Version {
			return Invalidf("--version %s but %s is for %s: drop one", o.Version, o.ManifestFile, m.Version)
		}
	} else {
		v := o.Version
		if v == "" {
			v = kubepkg.DefaultVersions()[len(kubepkg.DefaultVersions())-1]
		}
		if m, err = kubepkg.DefaultManifest(v, o.Arch); err != nil {
			return Invalid(err)
		}
	}
	if o.SealflowBinary != "" {
		if fi, err := os.Stat(o.SealflowBinary); err != nil || !fi.Mode().IsRegular() {
			return Invalidf("--sealflow-binary %s: not a file", o.SealflowBinary)
		}
	}
	out := o.Out
	if out == "" {
		out = "kube" + strings.TrimPrefix(m.Version, "v") + ".tar.gz"
	}
	prog := newTransferView(streams)
	start := time.Now()
	fmt.Fprintf(streams.Stderr, "building %s: Kubernetes %s for linux/%s\n", out, m.Version, m.Arch)
	res, err := kubepkg.Build(ctx, kubepkg.BuildOptions{
		Manifest:        m,
		Out:             out,
		Mirrors:         mirrors,
		Cache:           o.Cache,
		SealflowBinary:  o.SealflowBinary,
		SealflowVersion: o.SealflowVersion,
		Progress:        prog,
		Log:             prog.logWriter(),
	})
	prog.finish()
	if err != nil {
		if ctx.Err() != nil {
			return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted: %s was not written", out)}
		}
		return err
	}
	fmt.Fprintf(streams.Stdout, "%s  %s  %s  %d files, %d images, built in %s\n", res.Path, humanBytes(res.Size),
		res.SHA256, len(res.Manifest.Files), len(res.Manifest.Images), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// PackageInspect prints what a package holds.
func PackageInspect(streams IO, pkg string, asJSON bool) error {
	pm, err := kubepkg.Inspect(pkg)
	if err != nil {
		return packageErr(err)
	}
	if asJSON {
		enc := json.NewEncoder(streams.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pm)
	}
	printManifest(streams.Stdout, pm)
	return nil
}

// PackageVerify checks a package against its manifest.json.
func PackageVerify(streams IO, pkg string) error {
	pm, err := kubepkg.Verify(pkg)
	if err != nil {
		return packageErr(err)
	}
	fmt.Fprintf(streams.Stdout, "%s: ok: %d files and %d images match manifest.json (Kubernetes %s, linux/%s)\n",
		pkg, len(pm.Files), len(pm.Images), pm.Kubernetes, pm.Arch)
	return nil
}

// packageErr: a package that cannot be opened is bad input.
func packageErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return Invalid(err)
	}
	return err
}

func printManifest(w io.Writer, pm *kubepkg.PackageManifest) {
	fmt.Fprintf(w, "Kubernetes %s, linux/%s", pm.Kubernetes, pm.Arch)
	if pm.Sealflow != "" {
		fmt.Fprintf(w, ", built by sealflow %s", pm.Sealflow)
	}
	fmt.Fprintln(w)
	var keys []string
	for k := range pm.Versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVERSIONS")
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, pm.Versions[k])
	}
	fmt.Fprintln(tw, "\nSOURCES\tSHA256\tVERIFIED BY")
	for _, s := range pm.Sources {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.URL, short(s.SHA256), s.Verified)
	}
	fmt.Fprintln(tw, "\nFILES\tSIZE\tMODE\tSHA256")
	var total int64
	for _, f := range pm.Files {
		fmt.Fprintf(tw, "  kube/%s\t%s\t%s\t%s\n", f.Path, humanBytes(f.Size), f.Mode, short(f.SHA256))
		total += f.Size
	}
	fmt.Fprintf(tw, "  %d files\t%s\t\t\n", len(pm.Files), humanBytes(total))
	fmt.Fprintln(tw, "\nIMAGES\tDIGEST\tFROM")
	for _, im := range pm.Images {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", im.Ref, im.Digest, im.From)
	}
	tw.Flush()
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16]
	}
	return sum
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// readBounded reads a file of at most max bytes.
func readBounded(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Clean(p), max)
	}
	return data, nil
}

// transferView shows downloads: on a terminal one line redrawn in place
// with the current transfer's bytes and rate; otherwise a line per
// finished transfer.
type transferView struct {
	streams IO
	mu      sync.Mutex
	now     func() time.Time
	items   map[string]*transfer
	last    time.Time
	drawn   bool
}

type transfer struct {
	total, done int64
	start       time.Time
}

func newTransferView(streams IO) *transferView {
	return &transferView{streams: streams, now: time.Now, items: map[string]*transfer{}}
}

func (v *transferView) Start(name string, total int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.items[name]
	if !ok {
		t = &transfer{total: -1, start: v.now()}
		v.items[name] = t
	}
	if total >= 0 {
		t.total = total
	}
}

func (v *transferView) Add(name string, n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.items[name]
	if !ok {
		return
	}
	t.done += n
	if v.streams.TTY && v.now().Sub(v.last) >= 100*time.Millisecond {
		v.last = v.now()
		v.drawLocked(name, t)
	}
}

func (v *transferView) Done(name string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.items[name]
	if !ok {
		return
	}
	delete(v.items, name)
	v.clearLocked()
	if err != nil {
		return // the error is reported by the caller
	}
	el := v.now().Sub(t.start)
	if t.done > 0 {
		fmt.Fprintf(v.streams.Stderr, "  fetched %s: %s in %s (%s/s)\n", name, humanBytes(t.done), el.Round(100*time.Millisecond), humanBytes(rate(t.done, el)))
	} else {
		fmt.Fprintf(v.streams.Stderr, "  %s: done in %s\n", name, el.Round(100*time.Millisecond))
	}
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return n
	}
	return int64(float64(n) / d.Seconds())
}

func (v *transferView) drawLocked(name string, t *transfer) {
	el := v.now().Sub(t.start)
	line := fmt.Sprintf("  %s %s", name, humanBytes(t.done))
	if t.total > 0 {
		line += fmt.Sprintf(" / %s (%d%%)", humanBytes(t.total), t.done*100/t.total)
	}
	line += fmt.Sprintf("  %s/s", humanBytes(rate(t.done, el)))
	if len(line) > 100 {
		line = line[:100]
	}
	fmt.Fprintf(v.streams.Stderr, "\r\x1b[K%s", line)
	v.drawn = true
}

func (v *transferView) clearLocked() {
	if v.drawn {
		fmt.Fprint(v.streams.Stderr, "\r\x1b[K")
		v.drawn = false
	}
}

func (v *transferView) finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
}

// logWriter is where the builder's stage lines go: plain lines only when
// stderr is not a terminal (the terminal shows the transfer lines).
func (v *transferView) logWriter() io.Writer {
	return logLines{v}
}

type logLines struct{ v *transferView }

func (l logLines) Write(p []byte) (int, error) {
	l.v.mu.Lock()
	defer l.v.mu.Unlock()
	l.v.clearLocked()
	return l.v.streams.Stderr.Write(append([]byte("  "), p...))
}
