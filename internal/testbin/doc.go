// Package testbin builds this module's commands for end-to-end tests: once
// per test binary, into one temp dir that the package's TestMain removes
// when every test is done, so test runs leave no binaries behind.
package testbin
