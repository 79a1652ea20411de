package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/internal/store"
)

const tokenUsage = `mfabridge token import --config FILE --csv FILE [--replace]   hardware tokens nobody holds yet: serial,seed[,counter[,digits]]
       mfabridge token count  --config FILE                          how many are in stock
  Staff claim a token in the portal with its serial and a code it shows.`

func runToken(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "import" && args[0] != "count") {
		fmt.Fprintln(stderr, "usage:", tokenUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (required)")
	csvPath := fs.String("csv", "", "the vendor's list: serial,seed[,counter[,digits]] (import)")
	replace := fs.Bool("replace", false, "replace tokens already in stock with the same serial (import)")
	if err := fs.Parse(args[1:]); err != nil || *path == "" || fs.NArg() > 0 || (args[0] == "import") != (*csvPath != "") {
		fmt.Fprintln(stderr, "usage:", tokenUsage)
		return exitUsage
	}
	err := func() error {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		if cfg.Store.Key.IsZero() {
			return fmt.Errorf("%s: store.key is not set: create one with openssl rand -hex 32 and point store.key at it", *path)
		}
		st, err := openStore(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if args[0] == "count" {
			n, err := st.TokensInStock(ctx)
			if err == nil {
				fmt.Fprintf(stdout, "%d hardware tokens in stock\n", n)
			}
			return err
		}
		f, err := os.Open(*csvPath)
		if err != nil {
			return err
		}
		defer f.Close()
		tokens, bad := parseTokens(f, *csvPath)
		if len(bad) > 0 {
			return fmt.Errorf("nothing imported:\n  %s", strings.Join(bad, "\n  "))
		}
		if err := st.AddTokens(ctx, tokens, *replace); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("nothing imported: %w; add --replace to replace it", err)
			}
			return err
		}
		fmt.Fprintf(stdout, "imported %d hardware tokens; staff claim them in the portal by serial\n", len(tokens))
		return nil
	}()
	return exitFor(err, stderr, tokenUsage)
}

// parseTokens reads serial,seed[,counter[,digits]] lines (a header line
// starting with "serial" and lines starting with # are skipped) and
// reports every bad line; it returns tokens only when all are good.
func parseTokens(r io.Reader, name string) ([]store.Token, []string) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	var out []store.Token
	var bad []string
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		where := fmt.Sprintf("%s:%d", name, line)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", where, err))
			if len(bad) > 20 {
				break
			}
			continue
		}
		if len(out) == 0 && len(bad) == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "serial") {
			continue
		}
		t, msg := parseToken(rec)
		switch {
		case msg != "":
			bad = append(bad, where+": "+msg)
		case seen[t.Serial] > 0:
			bad = append(bad, fmt.Sprintf("%s: serial %s is also on line %d", where, t.Serial, seen[t.Serial]))
		default:
			seen[t.Serial] = line
			out = append(out, t)
		}
	}
	if len(out) == 0 && len(bad) == 0 {
		bad = append(bad, name+": no tokens")
	}
	return out, bad
}

func parseToken(rec []string) (store.Token, string) {
	if len(rec) < 2 || len(rec) > 4 {
		return store.Token{}, fmt.Sprintf("%d fields; want serial,seed[,counter[,digits]]", len(rec))
	}
	t := store.Token{Serial: strings.TrimSpace(rec[0]), Digits: 6}
	if t.Serial == "" || len(t.Serial) > 64 || strings.ContainsFunc(t.Serial, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return t, "the serial must be 1 to 64 printable ASCII characters without spaces"
	}
	seed, err := otp.ParseSeed(strings.TrimSpace(rec[1]))
	if err == nil {
		err = otp.CheckSecretLength(seed)
	}
	if err != nil {
		return t, "seed: " + err.Error()
	}
	t.Secret = seed
	if len(rec) > 2 && strings.TrimSpace(rec[2]) != "" {
		if t.Counter, err = strconv.ParseUint(strings.TrimSpace(rec[2]), 10, 64); err != nil {
			return t, fmt.Sprintf("counter %q is not a whole number", rec[2])
		}
	}
	if len(rec) > 3 {
		switch strings.TrimSpace(rec[3]) {
		case "6":
		case "8":
			t.Digits = 8
		default:
			return t, fmt.Sprintf("digits %q is not 6 or 8", rec[3])
		}
	}
	return t, ""
}
