package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
)

func testConfig() *config.Config {
	c := config.Default()
	return &c
}

// The RFC 4226 seed, "12345678901234567890", in the forms an import meets.
const (
	rfcHex    = "3132333435363738393031323334353637383930"
	rfcBase32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
)

var rfcSeed = []byte("12345678901234567890")

// parse runs parseImport, turning a panic into a test failure so that
// the other tests still run.
func parse(t *testing.T, in, name string) (lines []importLine, bad []string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("parseImport(%q) panicked: %v", in, r)
			lines, bad = nil, []string{"panic"}
		}
	}()
	return parseImport(strings.NewReader(in), name, testConfig())
}

func TestParseImportGood(t *testing.T) {
	in := "user,type,secret,counter\r\n" +
		"# migrated from the old server\n" +
		"\n" +
		"Ann,totp," + rfcBase32 + "\n" +
		"ben, HOTP ," + rfcHex + ",7\n" +
		"cat,hotp,base32:" + rfcBase32 + ",\n" +
		"cat,totp,\"gezd gnbv gy3t qojq gezd gnbv gy3t qojq\"\n" +
		"dan,hotp,hex:" + rfcHex + "\n"
	lines, bad := parse(t, in, "users.csv")
	if len(bad) > 0 {
		t.Fatalf("bad lines in a good file: %q", bad)
	}
	want := []struct {
		user    string
		method  factors.Method
		counter uint64
	}{{"ann", factors.TOTP, 0}, {"ben", factors.HOTP, 7}, {"cat", factors.HOTP, 0}, {"cat", factors.TOTP, 0}, {"dan", factors.HOTP, 0}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l.user != w.user || l.cred.Method != w.method || l.cred.Counter != w.counter || !bytes.Equal(l.cred.Secret, rfcSeed) || !l.cred.Active {
			t.Errorf("line %d: %s %+v, want %+v", i, l.user, l.cred, w)
		}
		if l.cred.Digits != 6 || l.cred.Algorithm != "SHA1" {
			t.Errorf("line %d: %d digits %s", i, l.cred.Digits, l.cred.Algorithm)
		}
		if l.cred.Method == factors.TOTP && l.cred.Period != 30 {
			t.Errorf("line %d: period %d", i, l.cred.Period)
		}
	}

	// Without a header, the first line is data.
	lines, bad = parse(t, "ann,totp,"+rfcBase32+"\n", "f.csv")
	if len(bad) > 0 || len(lines) != 1 {
		t.Errorf("no header: %+v %q", lines, bad)
	}
	// An empty file is not an error here (the command refuses it).
	if lines, bad = parse(t, "user,type,secret\n# nothing\n", "f.csv"); len(lines) != 0 || len(bad) != 0 {
		t.Errorf("header only: %+v %q", lines, bad)
	}
}

func TestParseImportBadLines(t *testing.T) {
	good := "ann,totp," + rfcBase32
	for _, tc := range []struct {
		name, line, want string
	}{
		{"too few fields", "bob,totp", "2 fields"},
		{"too many fields", "bob,hotp," + rfcHex + ",1,extra", "5 fields"},
		{"empty user", "  ,totp," + rfcBase32, "user"},
		{"control character in user", "b\x01b,totp," + rfcBase32, "user"},
		{"unknown type", "bob,sms,+447700900001", `type "sms"`},
		{"empty type", "bob,," + rfcBase32, `type ""`},
		{"totp secret not base32", "bob,totp,0189abcd0189abcd0189abcd0189abcd", "secret"},
		{"totp secret too short", "bob,totp,MZXW6YTBOI", "at least 16"},
		{"totp secret too long", "bob,totp," + strings.Repeat("A", 208), "at most 128"},
		{"counter on totp", "bob,totp," + rfcBase32 + ",5", "only for hotp"},
		{"hotp secret bad hex", "bob,hotp,hex:xyz", "secret"},
		{"hotp secret too short", "bob,hotp,hex:00112233", "at least 16"},
		{"hotp counter not a number", "bob,hotp," + rfcHex + ",seven", `counter "seven"`},
		{"hotp counter negative", "bob,hotp," + rfcHex + ",-1", `counter "-1"`},
		{"hotp counter too big", "bob,hotp," + rfcHex + ",9223372036854775808", "counter"},
		{"duplicate user and type", "ANN,totp," + rfcBase32, "also on line 2"},
		{"CSV syntax", `bob,totp,"` + rfcBase32 + `"x`, "line 3"},
		// Found by FuzzParseImport: a bad quote in the first field made
		// parseImport panic (csv.Reader.FieldPos on a failed record).
		{"malformed quoted first field", `"bob"x,totp,` + rfcBase32, "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := "user,type,secret,counter\n" + good + "\n" + tc.line + "\n" + "cat,hotp," + rfcHex + "\n"
			lines, bad := parse(t, in, "users.csv")
			if lines != nil {
				t.Errorf("lines returned although line 3 is bad: %+v", lines)
			}
			if len(bad) != 1 {
				t.Fatalf("bad = %q, want exactly line 3", bad)
			}
			if !strings.HasPrefix(bad[0], "users.csv:3: ") || !strings.Contains(bad[0], tc.want) {
				t.Errorf("bad = %q, want users.csv:3: ...%s...", bad[0], tc.want)
			}
		})
	}

	t.Run("every bad line is reported", func(t *testing.T) {
		in := "user,type,secret\n" + // 1
			"bob,sms,x\n" + // 2
			good + "\n" + // 3
			"# comment\n" + // 4
			"cat,totp,short\n" + // 5
			"\n" + // 6
			"dan,\"sms\n" + // 7: a quoted field over two lines
			"\"," + rfcHex + "\n" + // 8
			"eve,totp\n" // 9
		lines, bad := parse(t, in, "m.csv")
		if lines != nil {
			t.Errorf("lines returned: %+v", lines)
		}
		var at []string
		for _, b := range bad {
			at = append(at, strings.SplitN(b, " ", 2)[0])
		}
		if want := "m.csv:2: m.csv:5: m.csv:7: m.csv:9:"; strings.Join(at, " ") != want {
			t.Errorf("reported %q, want %s", bad, want)
		}
	})

	t.Run("malformed quote on the first line", func(t *testing.T) {
		lines, bad := parse(t, `"ann`+"\n", "f.csv")
		if lines != nil || len(bad) != 1 || !strings.HasPrefix(bad[0], "f.csv:1: ") {
			t.Errorf("lines %+v, bad %q; want one problem at f.csv:1", lines, bad)
		}
	})

	t.Run("a header later in the file is data", func(t *testing.T) {
		_, bad := parse(t, good+"\nuser,type,secret\n", "f.csv")
		if len(bad) != 1 || !strings.HasPrefix(bad[0], "f.csv:2: ") {
			t.Errorf("bad = %q", bad)
		}
	})
}

// A spreadsheet saving "CSV UTF-8" starts the file with a byte-order
// mark. It must not become part of the first field: with a header, the
// header would be read as data and refuse the import; without one, the
// first user would be enrolled under a name nobody logs in with.
func TestParseImportByteOrderMark(t *testing.T) {
	const bom = "\ufeff"
	lines, bad := parse(t, bom+"user,type,secret\nann,totp,"+rfcBase32+"\n", "excel.csv")
	if len(bad) != 0 || len(lines) != 1 || lines[0].user != "ann" {
		t.Errorf("with a header: lines %+v, bad %q; want ann imported", lines, bad)
	}
	lines, bad = parse(t, bom+"ann,totp,"+rfcBase32+"\n", "excel.csv")
	if len(bad) != 0 || len(lines) != 1 || lines[0].user != "ann" {
		var users []string
		for _, l := range lines {
			users = append(users, strconv.Quote(l.user))
		}
		t.Errorf("without a header: users %v, bad %q; want \"ann\"", users, bad)
	}
}

var badLineRE = regexp.MustCompile(`^fuzz\.csv:([0-9]+): .`)

// FuzzParseImport: any bytes as the CSV. parseImport never panics; it
// returns either lines or problems, never both; every problem names the
// file and a line that exists; every line returned is a usable credential,
// once per user and method.
func FuzzParseImport(f *testing.F) {
	for _, s := range []string{
		"user,type,secret,counter\nann,totp," + rfcBase32 + "\nben,hotp," + rfcHex + ",7\n",
		"ann,totp," + rfcBase32 + "\nann,totp," + rfcBase32 + "\n",
		"bob,sms,x\n\"unterminated\n",
		"# only a comment\n",
		"a,hotp,hex:" + rfcHex + ",18446744073709551615\n",
		"\ufeffuser,type,secret\n",
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		var lines []importLine
		var bad []string
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("parseImport(%q) panicked: %v", data, r)
				}
			}()
			lines, bad = parseImport(bytes.NewReader(data), "fuzz.csv", cfg)
		}()
		if len(lines) > 0 && len(bad) > 0 {
			t.Fatalf("both lines and problems: %d, %q", len(lines), bad)
		}
		nlines := bytes.Count(data, []byte("\n")) + 1
		for _, b := range bad {
			m := badLineRE.FindStringSubmatch(b)
			if m == nil {
				t.Fatalf("problem %q does not start with fuzz.csv:LINE:", b)
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > nlines {
				t.Fatalf("problem %q names line %d of %d", b, n, nlines)
			}
		}
		seen := map[string]bool{}
		for _, l := range lines {
			if l.user == "" || !utf8.ValidString(l.user) || strings.TrimSpace(l.user) != l.user || strings.ToLower(l.user) != l.user {
				t.Fatalf("user %q is not normalised", l.user)
			}
			if l.cred.Method != factors.TOTP && l.cred.Method != factors.HOTP {
				t.Fatalf("method %q", l.cred.Method)
			}
			if err := otp.CheckSecretLength(l.cred.Secret); err != nil {
				t.Fatalf("%s: %v", l.user, err)
			}
			if !l.cred.Active || (l.cred.Digits != 6 && l.cred.Digits != 8) {
				t.Fatalf("credential %+v", l.cred)
			}
			if l.cred.Method == factors.TOTP && l.cred.Counter != 0 {
				t.Fatalf("TOTP with a counter: %+v", l.cred)
			}
			k := l.user + "\x00" + string(l.cred.Method)
			if seen[k] {
				t.Fatalf("%s %s returned twice", l.user, l.cred.Method)
			}
			seen[k] = true
		}
	})
}
