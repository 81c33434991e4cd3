# Thin wrappers: the scripts are the source of truth and run the same in CI.
.PHONY: build test package test-deb

build:
	bash scripts/package.sh build

test:
	bash scripts/test.sh

package:
	bash scripts/package.sh

# Installs and purges the .deb packages on this machine: root only.
test-deb:
	bash scripts/test-deb.sh
