//go:build unix

package store

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// walIndex reads the header of the store's wal-index (the -shm file that
// SQLite shares between every connection to a database in WAL mode, in
// every process). SQLite rewrites the header on every commit, and its own
// readers compare it with the copy they last saw to learn whether their
// page cache is stale; the cache does the same to learn whether its
// entries are (https://sqlite.org/walformat.html, "the wal-index header").
type walIndex struct {
	fd  int // a bare descriptor: an *os.File would close itself when collected
	mem []byte
}

// walIndexHeaderSize is one copy of the header; the file starts with two.
const walIndexHeaderSize = 48

// walIndexVersion is the format of the header (iVersion, its first word).
const walIndexVersion = 3007000

// openWALIndex maps the header of dbPath's wal-index. The file stays open
// until close, even when an error is returned with w: see close.
func openWALIndex(dbPath string) (w *walIndex, err error) {
	fd, err := syscall.Open(dbPath+"-shm", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	w = &walIndex{fd: fd}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Size < 2*walIndexHeaderSize {
		return w, fmt.Errorf("store: %s-shm is not a wal-index yet", dbPath)
	}
	if w.mem, err = syscall.Mmap(fd, 0, 2*walIndexHeaderSize, syscall.PROT_READ, syscall.MAP_SHARED); err != nil {
		return w, err
	}
	// A commit may be writing the header this very moment: look again.
	for range 10 {
		if h, ok := w.header(); ok {
			if h[0] != walIndexVersion {
				return w, fmt.Errorf("store: %s-shm: wal-index version %d not understood", dbPath, h[0])
			}
			return w, nil
		}
		time.Sleep(time.Millisecond)
	}
	return w, fmt.Errorf("store: %s-shm: no settled wal-index header", dbPath)
}

// header reads the header as SQLite's readers do: the first copy, then
// the second, which a writer updates in the opposite order; ok is false
// when they differ (a commit is being written) or the header is not set
// up yet. Other processes write the memory, so every word is read with
// an atomic load, which also keeps the two reads in order.
func (w *walIndex) header() (h header, ok bool) {
	var second header
	base := unsafe.Pointer(unsafe.SliceData(w.mem))
	for i := range h {
		h[i] = atomic.LoadUint32((*uint32)(unsafe.Add(base, 4*i)))
	}
	for i := range second {
		second[i] = atomic.LoadUint32((*uint32)(unsafe.Add(base, walIndexHeaderSize+4*i)))
	}
	// isInit is the byte at offset 12, the first of the fourth word.
	isInit := (*[4]byte)(unsafe.Pointer(&h[3]))[0]
	return h, h == second && isInit != 0
}

// close unmaps the header and closes the file. It must come after the
// database is closed, and is the only place the file is closed: closing
// any descriptor of a file drops every POSIX lock this process holds on
// it, and SQLite's connections lock the -shm file.
func (w *walIndex) close() {
	if w.mem != nil {
		syscall.Munmap(w.mem)
	}
	syscall.Close(w.fd)
}
