package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/internal/username"
)

// enrol import's CSV: user,type,secret[,counter] lines, each checked, and
// the users found in the directory.

// importLine is one parsed CSV line.
type importLine struct {
	user  string // normalised; the canonical name once resolved
	given string // as written
	line  int
	cred  factors.Credential
}

// parseImport reads user,type,secret[,counter] lines (a header line
// starting with "user" and lines starting with # are skipped) and reports
// every bad line; it returns lines only when all are good.
func parseImport(r io.Reader, name string, cfg *config.Config) ([]importLine, []string) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	var out []importLine
	var bad []string
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				bad = append(bad, fmt.Sprintf("%s: %v", name, err))
				break
			}
			bad = append(bad, fmt.Sprintf("%s:%d: %v", name, pe.StartLine, err))
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(out) == 0 && len(bad) == 0 && len(rec) > 0 {
			// Spreadsheets saving "CSV UTF-8" start with a byte-order mark.
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
		}
		if len(out) == 0 && len(bad) == 0 && len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "user") {
			continue
		}
		problem := func(msg string) { bad = append(bad, fmt.Sprintf("%s:%d: %s", name, line, msg)) }
		if len(rec) < 3 || len(rec) > 4 {
			problem(fmt.Sprintf("%d fields; want user,type,secret[,counter]", len(rec)))
			continue
		}
		user, err := username.Normalise([]byte(rec[0]), cfg.Server.Username)
		if err != nil {
			problem(fmt.Sprintf("user %q: %v", rec[0], err))
			continue
		}
		typ := strings.ToLower(strings.TrimSpace(rec[1]))
		var c factors.Credential
		switch typ {
		case "totp":
			secret, err := otp.ParseBase32(rec[2])
			if err == nil {
				err = otp.CheckSecretLength(secret)
			}
			if err != nil {
				problem("secret: " + err.Error())
				continue
			}
			if len(rec) == 4 && strings.TrimSpace(rec[3]) != "" {
				problem("a counter is only for hotp")
				continue
			}
			c = totpCredential(cfg, secret, true)
		case "hotp":
			secret, err := otp.ParseSeed(rec[2])
			if err == nil {
				err = otp.CheckSecretLength(secret)
			}
			if err != nil {
				problem("secret: " + err.Error())
				continue
			}
			var n uint64
			if len(rec) == 4 && strings.TrimSpace(rec[3]) != "" {
				if n, err = strconv.ParseUint(strings.TrimSpace(rec[3]), 10, 63); err != nil {
					problem(fmt.Sprintf("counter %q is not a whole number", rec[3]))
					continue
				}
			}
			c = factors.Credential{Method: factors.HOTP, Secret: secret, Algorithm: "SHA1", Digits: 6, Counter: n, Active: true}
		default:
			problem(fmt.Sprintf("type %q is not totp or hotp", rec[1]))
			continue
		}
		k := user + "\x00" + typ
		if first, dup := seen[k]; dup {
			problem(fmt.Sprintf("%s %s is also on line %d", user, typ, first))
			continue
		}
		seen[k] = line
		out = append(out, importLine{user: user, given: rec[0], line: line, cred: c})
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return out, nil
}

// resolveImport replaces each line's user by the canonical name of the
// directory entry it finds, as enrolling one user does; two lines that
// turn out to be one user and method are a bad line.
func resolveImport(ctx context.Context, cfg *config.Config, name string, lines []importLine, stderr io.Writer) error {
	given := make([]string, len(lines))
	for i, l := range lines {
		given[i] = l.given
	}
	users, err := canonicalNames(ctx, cfg, given)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("%s names users the directory does not know (above); nothing was imported", name)
	}
	seen := map[string]int{}
	bad := 0
	for i := range lines {
		lines[i].user = users[i]
		k := users[i] + "\x00" + string(lines[i].cred.Method)
		if first, dup := seen[k]; dup {
			fmt.Fprintf(stderr, "%s:%d: %s is the directory's %s, as on line %d\n", name, lines[i].line, lines[i].given, users[i], first)
			bad++
		}
		seen[k] = lines[i].line
	}
	if bad > 0 {
		return fmt.Errorf("%d bad lines in %s; nothing was imported", bad, name)
	}
	return nil
}
