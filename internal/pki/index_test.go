package pki

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

func withTrailer(body string) []byte {
	n := 0
	if body != "" {
		n = strings.Count(body, "\n")
	}
	sum := sha256.Sum256([]byte(body))
	return []byte(fmt.Sprintf("%s%sentries=%d sha256=%s\n", body, trailerPrefix, n, hex.EncodeToString(sum[:])))
}

// An index in OpenSSL's own format (as `openssl ca` writes it) parses,
// with our kind in the file-name field, and round-trips byte for byte.
func TestIndexGolden(t *testing.T) {
	body := "V\t350101000000Z\t\t02\tserver\t/CN=vpn.example.com\n" +
		"R\t270101000000Z\t260101120000Z,keyCompromise\t03\tclient\t/CN=alice\n" +
		"R\t270101000000Z\t260101120000Z\t04\tclient\t/CN=bob\n" +
		"V\t20510101000000Z\t\t0100\tclient\t/CN=carol@example.com\n"
	b := withTrailer(body)
	es, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[1].Reason != ReasonKeyCompromise || !es[1].Revoked || es[3].Serial.Cmp(big.NewInt(256)) != 0 ||
		es[3].Expiry.Year() != 2051 || es[0].Expiry.Year() != 2035 || es[1].RevokedAt != time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) {
		t.Fatalf("parsed %+v", es)
	}
	if got := MarshalIndex(es); string(got) != string(b) {
		t.Fatalf("round trip:\n%s\nwant\n%s", got, b)
	}
}

func TestIndexRejects(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"X\t350101000000Z\t\t02\tserver\t/CN=a\n", "status"},
		{"V\t350101000000Z\t\t2\tserver\t/CN=a\n", "serial"},
		{"V\t350101000000Z\t\t0a\tserver\t/CN=a\n", "serial"},
		{"V\t350101000000Z\t\t00\tserver\t/CN=a\n", "serial"},
		{"V\t350101000000Z\t\t02\tunknown\t/CN=a\n", "kind"},
		{"V\t350101000000Z\t\t02\tclient\t/O=x/CN=a\n", "subject"},
		{"V\t350101000000Z\t\t02\tclient\t/CN=../a\n", "bad certificate name"},
		{"V\t3501010000Z\t\t02\tclient\t/CN=a\n", "expiry"},
		{"V\t20350101000000Z\t\t02\tclient\t/CN=a\n", "UTCTime"},
		{"V\t350101000000Z\t260101000000Z\t02\tclient\t/CN=a\n", "revocation date"},
		{"R\t350101000000Z\t260101000000Z,sleepy\t02\tclient\t/CN=a\n", "unknown revocation reason"},
		{"V\t350101000000Z\t\t02\tclient\t/CN=a\nV\t350101000000Z\t\t02\tclient\t/CN=b\n", "also on line 1"},
		{"V\t350101000000Z\t\t02\tclient\t/CN=a\nV\t350101000000Z\t\t03\tclient\t/CN=a\n", "second unrevoked"},
		{"# hello\n", "comment"},
		{"V\t350101000000Z\t\t02\tclient\n", "fields"},
	} {
		_, err := ParseIndex(withTrailer(tc.body))
		if !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseIndex(%q) = %v, want %q", tc.body, err, tc.want)
		}
	}
	good := withTrailer("V\t350101000000Z\t\t02\tclient\t/CN=a\n")
	for _, bad := range [][]byte{good[:len(good)-1], append([]byte("V\t350101000000Z\t\t03\tclient\t/CN=b\n"), good...),
		[]byte(strings.Replace(string(good), "entries=1", "entries=01", 1)), []byte(strings.Replace(string(good), "entries=1", "entries=2", 1))} {
		if _, err := ParseIndex(bad); !errors.Is(err, ErrCorruptIndex) {
			t.Errorf("ParseIndex(%q) = %v, want ErrCorruptIndex", bad, err)
		}
	}
}

// FuzzParseIndex: no panics; whatever parses re-marshals to the same bytes.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(withTrailer("V\t350101000000Z\t\t02\tserver\t/CN=vpn.example.com\nR\t270101000000Z\t260101120000Z,superseded\t03\tclient\t/CN=a\n")))
	f.Add([]byte(withTrailer("")))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseIndex(b)
		if err != nil {
			return
		}
		if got := MarshalIndex(es); string(got) != string(b) {
			t.Fatalf("round trip:\n%q\n%q", got, b)
		}
	})
}

// FuzzIndexEntries fuzzes the entry lines under a valid trailer (the
// checksum would otherwise keep the fuzzer out of the line parser).
func FuzzIndexEntries(f *testing.F) {
	f.Add("V\t350101000000Z\t\t02\tserver\t/CN=vpn.example.com\n")
	f.Add("R\t270101000000Z\t260101120000Z,keyCompromise\t03\tclient\t/CN=alice\nV\t20510101000000Z\t\t0100\tclient\t/CN=c\n")
	f.Add("R\t490101000000Z\t500101000000Z\t7F\tclient\t/CN=x\n")
	f.Fuzz(func(t *testing.T, body string) {
		b := withTrailer(body)
		es, err := ParseIndex(b)
		if err != nil {
			return
		}
		if got := MarshalIndex(es); string(got) != string(b) {
			t.Fatalf("round trip:\n%q\n%q", got, b)
		}
	})
}
