// Package version is sealflow's version, stamped by the linker:
//
//	go build -ldflags "-X github.com/sealflow/sealflow/internal/version.Version=v0.3.0" ./cmd/sealflow
//
// and the name of sealflow's own image, which an offline package carries
// (sealflow package build) and the lvscare static pod runs.
package version

import (
	"regexp"
	"strings"
)

// Version is set at link time only; "dev" for an unstamped build.
var Version = "dev"

// Repository is where sealflow's image is named; its tag is the version.
const Repository = "docker.io/sealflow/sealflow"

// Image is this sealflow's image.
func Image() string { return ImageOf(Version) }

// ImageOf is the image of a sealflow version.
func ImageOf(v string) string { return Repository + ":" + Tag(v) }

var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Tag makes a version a valid image tag (v0.3.0-4-gabc+dirty -> v0.3.0-4-gabc-dirty).
func Tag(v string) string {
	t := strings.TrimLeft(badTagChars.ReplaceAllString(v, "-"), ".-")
	if t == "" {
		t = "dev"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
