// Package boundary holds the repository's import-boundary test: which
// package may depend on which. It has no code of its own.
package boundary
