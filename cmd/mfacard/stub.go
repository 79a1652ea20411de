//go:build !cgo || nopcsc

package main

// openPCSC refuses: this binary was built without PC/SC support.
func openPCSC() (pcsc, error) { return nil, errNoPCSC }
