package plans

import (
	"embed"
	"strings"
)

//go:embed ha.yaml add-node.yaml clean.yaml demo.yaml
var shipped embed.FS

// Shipped returns a plan that comes with sealflow: "ha", "add-node",
// "clean" or "demo" (with or without .yaml), so `sealflow run ha` works
// without the files.
func Shipped(name string) ([]byte, bool) {
	name = strings.TrimSuffix(name, ".yaml")
	if strings.ContainsAny(name, "/.") {
		return nil, false
	}
	b, err := shipped.ReadFile(name + ".yaml")
	return b, err == nil
}

// ShippedNames lists the plans that come with sealflow.
func ShippedNames() []string { return []string{"ha", "add-node", "clean", "demo"} }
