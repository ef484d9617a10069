// Package cmdargs explains a wrong number of command-line arguments the way
// the command's usage line names them: "missing CMD", "unexpected argument
// "b"", with the usage line itself, instead of cobra's "requires at least 2
// arg(s), only received 1". Check wraps a command's own argument check
// (cobra.Command.Args), which stays the authority on what is accepted; the
// usage line (cobra.Command.Use) only names what is missing or extra.
//
// It is shared by devgate and devgate-lab. It does not print anything or
// decide exit codes: callers classify *Error as a usage error.
package cmdargs

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Arg is one positional argument of a usage line.
type Arg struct {
	Name     string // as written: "<target>", "CMD", "KEY=VALUE"
	Optional bool   // written in brackets: "[target]", "[ARGS...]"
	Repeated bool   // written with "...": "SPEC...", "[ARGS...]"
}

// Positional lists the positional arguments of a cobra Use line (the
// command name first): "<x>" and upper-case words are arguments,
// "[…]" makes them optional and "..." repeatable; flags ("-r", "[-j N]",
// "--dir D", "(--config F | --endpoint E)"), their values and "--" are not.
func Positional(use string) []Arg {
	toks := tokens(use)
	var out []Arg
	for i := 1; i < len(toks); i++ {
		tok := toks[i]
		if tok == "--" {
			continue
		}
		if strings.HasPrefix(tok, "-") {
			if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "[") && !strings.HasPrefix(toks[i+1], "(") && !strings.HasPrefix(toks[i+1], "-") {
				i++ // the flag's value: "--dir D"
			}
			continue
		}
		a := Arg{Name: tok}
		if strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]") {
			a.Name, a.Optional = strings.TrimSpace(tok[1:len(tok)-1]), true
		}
		if strings.HasPrefix(a.Name, "-") || strings.HasPrefix(a.Name, "(") {
			continue // a group of flags: "[-j N]", "(--config F | --endpoint E)"
		}
		for _, dots := range []string{"...", "…"} {
			if n, ok := strings.CutSuffix(a.Name, dots); ok {
				a.Name, a.Repeated = n, true
			}
		}
		if !isArgName(a.Name, a.Optional) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// isArgName: "<target>", an upper-case word ("SRC", "KEY=VALUE", "ARGS"),
// or in brackets a lower-case one ("[target]").
func isArgName(s string, optional bool) bool {
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		return true
	}
	if s == "" {
		return false
	}
	lower := 0
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			lower++
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '=', r == '-':
		default:
			return false
		}
	}
	return lower == 0 || (optional && lower == len(s))
}

// tokens splits a usage line on spaces, keeping "[…]" and "(…)" groups whole.
func tokens(use string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range use {
		switch {
		case r == '[' || r == '(':
			depth++
		case (r == ']' || r == ')') && depth > 0:
			depth--
		case r == ' ' && depth == 0:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// Error is a wrong number of arguments, explained.
type Error struct {
	// Msg says what is missing or extra: "missing CMD after <target>",
	// "unexpected argument "b" (devgate start takes <target> only)".
	Msg string
	// Usage is the command's usage line: "devgate exec <target> -- CMD [ARGS...]".
	Usage string
	// Err is the command's own check's error (cobra's wording).
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// UsageLine is c's usage line: its parents' names and its Use, without
// cobra's "[flags]".
func UsageLine(c *cobra.Command) string {
	if c.HasParent() {
		return c.Parent().CommandPath() + " " + c.Use
	}
	return c.Use
}

// Check runs c's argument check (c.Args; nil accepts anything) on args and
// turns its error into an *Error that names, from c's usage line, what is
// missing or which argument is one too many.
func Check(c *cobra.Command, check cobra.PositionalArgs, args []string) error {
	if check == nil {
		return nil
	}
	err := check(c, args)
	if err == nil {
		return nil
	}
	return &Error{Msg: explain(c, args, err), Usage: UsageLine(c), Err: err}
}

func explain(c *cobra.Command, args []string, err error) string {
	ps := Positional(c.Use)
	var required []Arg
	for _, a := range ps {
		if !a.Optional {
			required = append(required, a)
		}
	}
	repeated := len(ps) > 0 && ps[len(ps)-1].Repeated
	switch {
	case len(args) < len(required):
		var names []string
		for _, a := range required[len(args):] {
			names = append(names, a.Name)
		}
		msg := "missing " + and(names)
		if len(args) > 0 {
			msg += " after " + required[len(args)-1].Name
		}
		return msg
	case len(args) > len(ps) && !repeated:
		takes := "no arguments"
		if len(ps) > 0 {
			var names []string
			for _, a := range ps {
				if a.Optional {
					names = append(names, "["+a.Name+"]")
				} else {
					names = append(names, a.Name)
				}
			}
			takes = strings.Join(names, " ") + " only"
		}
		return fmt.Sprintf("unexpected argument %q (%s takes %s)", args[len(ps)], c.CommandPath(), takes)
	}
	return err.Error() // the usage line does not say: the check's own words
}

// and joins names: "A", "A and B", "A, B and C".
func and(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
