// Package shquote quotes strings for a POSIX shell (sh -c, ssh's
// ProxyCommand, the commands devgate runs on an instance, env files).
//
// It does not quote for Windows' CreateProcess or for ssh_config values
// outside a shell; those have their own rules (package sshconfig).
package shquote

import "strings"

// Quote returns s as one shell word: unchanged when every byte is in
// [A-Za-z0-9_./:@%+,-] (and s is not empty), otherwise in single quotes with
// each single quote closed, escaped with a backslash and reopened. A POSIX
// shell reads the result back as exactly s.
// s must not contain NUL (no shell word can).
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, unsafe) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each word and joins them with spaces: a command line.
func Join(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

func unsafe(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("_./:@%+,-", r)
}
