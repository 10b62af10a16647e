// Package lint holds the tests that keep the package structure honest
// (after pebble's internal/lint): import edges that must not exist. It has
// no production code.
package lint
