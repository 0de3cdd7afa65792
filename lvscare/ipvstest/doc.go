// Package ipvstest runs lvscare's IPVS backend against a real kernel: run.sh
// boots Debian's kernel under qemu with an initramfs holding the IPVS
// modules and this package's test binary, which runs TestIPVSScenario
// (gated by LVSCARE_IPVS_VM=1) and prints a PASS or FAIL line.
package ipvstest
