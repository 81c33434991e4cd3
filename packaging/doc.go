// Package packaging has no Go code to import. The directory holds the
// .deb/.rpm definitions (nfpm-*.yaml), the shipped config files and the
// templates of the maintainer scripts (scripts/), which
// scripts/render.sh turns into one script per package and phase at build
// time. Its test renders them and compares the result with the reviewed
// scripts in testdata/ (refreshed with -update).
package packaging
