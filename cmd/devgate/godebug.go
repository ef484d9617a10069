//go:build go1.27

// Built with Go 1.27 or newer (go.mod's toolchain line, as releases and CI
// are), keep that Go's behaviour although go.mod's minimum is go 1.26.0 (a
// minimum older than the toolchain selects the older defaults: go help
// godebug; the two settings Go 1.27 changed, internal/godebugs/table.go):
// SSL_CERT_FILE and SSL_CERT_DIR replace the system verifier on macOS and
// Windows too (crypto/x509.SystemCertPool), and tracebacks show goroutine
// labels. Go 1.26 does not know these settings; the build constraint leaves
// them out there. .ci/release checks that release builds carry them.

//go:debug tracebacklabels=1
//go:debug x509sslcertoverrideplatform=1
package main
