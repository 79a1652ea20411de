package config_test

import (
	"strings"
	"testing"
)

const radsecServer = `server:
  radsec_listen: "127.0.0.1:2083"
  radsec_tls: {cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem}
`

func TestRadSecClients(t *testing.T) {
	t.Run("a RadSec client beside a UDP client with the same address", func(t *testing.T) {
		c := parse(t, radsecServer+minimal+`  - name: rs
    address: 192.0.2.10
    radsec_name: nas.example.org
`)
		if c.Clients[1].RadsecName != "nas.example.org" || !c.Clients[1].Secret.IsZero() {
			t.Errorf("client = %+v", c.Clients[1])
		}
	})
	for _, tc := range []struct {
		name, src, want string
	}{
		{"radsec_name without radsec_listen", minimal + "  - {name: rs, address: 192.0.2.0/24, radsec_name: nas}\n", "radsec_listen is not set"},
		{"a RadSec client with a secret", radsecServer + minimal + "  - {name: rs, address: 192.0.2.0/24, radsec_name: nas, secret: x}\n", `fixed "radsec"`},
		{"radsec_listen without certificates", "server: {radsec_listen: \"127.0.0.1:2083\"}\n" + minimal, "missing: RadSec needs"},
		{"two RadSec clients with one name and range", radsecServer + minimal +
			"  - {name: a, address: 192.0.2.0/24, radsec_name: nas}\n  - {name: b, address: 192.0.2.0/24, radsec_name: NAS}\n", "overlaps"},
		{"radsec_max_connections out of range", strings.Replace(radsecServer, "server:\n", "server:\n  radsec_max_connections: 0\n", 1) + minimal, "is not from 1 to 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseError(t, tc.src)
			if !strings.Contains(e.Error(), tc.want) {
				t.Errorf("error lacks %q:\n%v", tc.want, e)
			}
		})
	}
}
