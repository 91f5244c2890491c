// Package childproc starts child processes that must not outlive us
// (function replicas, ffmpeg, versitygw).
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd with Pdeathsig set to SIGKILL (kept if the caller set
// one), from one OS thread that lives as long as the process: Linux sends
// Pdeathsig when the *thread* that forked the child exits, and Go may retire
// the thread behind an ordinary goroutine, which would kill the child early.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	starter.once.Do(func() {
		starter.ch = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for req := range starter.ch {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	starter.ch <- startReq{cmd, done}
	return <-done
}

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

var starter struct {
	once sync.Once
	ch   chan startReq
}
