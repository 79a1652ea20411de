//go:build unix

package store

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walIndex reads the header of the store's wal-index (the -shm file that
// SQLite shares between every connection to a database in WAL mode, in
// every process). SQLite rewrites the header on every commit, and its own
// readers compare it with the copy they last saw to learn whether their
// page cache is stale; the cache does the same to learn whether its
// entries are (https://sqlite.org/walformat.html, "the wal-index header").
type walIndex struct {
	f   *os.File
	mem []byte
}

// walIndexHeaderSize is one copy of the header; the file starts with two.
const walIndexHeaderSize = 48

// walIndexVersion is the format of the header (iVersion, its first word).
const walIndexVersion = 3007000

// header is one copy of the wal-index header, as 32-bit words.
type header [walIndexHeaderSize / 4]uint32

func openWALIndex(dbPath string) (*walIndex, error) {
	f, err := os.Open(dbPath + "-shm")
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < 2*walIndexHeaderSize {
		f.Close() // nothing is locked through f yet, so closing is safe
		return nil, fmt.Errorf("store: %s-shm is not a wal-index yet", dbPath)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 2*walIndexHeaderSize, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &walIndex{f: f, mem: mem}
	if h, ok := w.header(); !ok || h[0] != walIndexVersion {
		w.close()
		return nil, fmt.Errorf("store: %s-shm: wal-index header not understood", dbPath)
	}
	return w, nil
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
// database is closed: closing any descriptor of a file drops every POSIX
// lock this process holds on it, SQLite's on the -shm included.
func (w *walIndex) close() {
	syscall.Munmap(w.mem)
	w.f.Close()
}
