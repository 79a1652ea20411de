package radius

import (
	"bytes"
	"crypto/md5"
	"errors"
)

var errPasswordEncoding = errors.New("User-Password is not a multiple of 16 bytes from 16 to 128")
var errPasswordNUL = errors.New("User-Password holds a NUL before its end")

// decodePassword reverses the User-Password hiding of RFC 2865 §5.2.
// Unlike layeh's UserPassword it refuses a NUL followed by more text: the
// padding is NULs at the end only, and a password cut at an inner NUL
// would be a different password from the one the user typed.
func decodePassword(a, secret []byte, auth [16]byte) ([]byte, error) {
	if len(a) < 16 || len(a) > 128 || len(a)%16 != 0 {
		return nil, errPasswordEncoding
	}
	out := make([]byte, len(a))
	prev := auth[:]
	for i := 0; i < len(a); i += 16 {
		h := md5.New()
		h.Write(secret)
		h.Write(prev)
		sum := h.Sum(nil)
		for j := 0; j < 16; j++ {
			out[i+j] = a[i+j] ^ sum[j]
		}
		prev = a[i : i+16]
	}
	out = bytes.TrimRight(out, "\x00")
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, errPasswordNUL
	}
	return out, nil
}
