//go:build !unix

package analysis

import "os/exec"

// setProcessGroup is a no-op where process groups do not exist: cancelling
// cmd kills only its process.
func setProcessGroup(cmd *exec.Cmd) {}

// killGroup is a no-op where process groups do not exist.
func killGroup(cmd *exec.Cmd) {}
