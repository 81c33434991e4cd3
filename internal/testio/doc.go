// Package testio holds I/O helpers shared by the repository's tests.
package testio
