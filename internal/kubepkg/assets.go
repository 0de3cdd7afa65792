package kubepkg

import (
	"embed"
	"io/fs"
)

// assets are the package's scripts (shell/) and configuration (conf/);
// assets/README.md says what init.sh changes on a host and what clean.sh
// puts back.
//
//go:embed assets/shell assets/conf
var assets embed.FS

// Assets is the embedded shell/ and conf/ tree.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	return sub
}
