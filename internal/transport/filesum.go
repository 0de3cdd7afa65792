package transport

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// FileSum returns the hex sha256 of a local file, in the form Upload's
// sum takes.
func FileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
