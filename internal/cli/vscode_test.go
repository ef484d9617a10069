package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVSCodeCommand(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if code, _, _ := runCLI(t, "", "vscode"); code != 23 {
		t.Fatalf("without setup: exit %d, want 23 (Config)", code)
	}
	os.MkdirAll(filepath.Join(home, ".ssh/devgate"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh/devgate/config"), []byte("Host devbox-gpu1\n    HostName i-1\n\nHost devbox-*\n    User x\n"), 0o600)
	settings := filepath.Join(home, ".config/Code/User/settings.json")
	os.MkdirAll(filepath.Dir(settings), 0o755)
	orig := "{\n    // keep me\n    \"editor.tabSize\": 2\n}\n"
	os.WriteFile(settings, []byte(orig), 0o644)

	code, out, _ := runCLI(t, "", "vscode")
	if code != 0 || !strings.Contains(out, `+    "remote.SSH.connectTimeout": 120`) || !strings.Contains(out, `"devbox-gpu1": "linux"`) {
		t.Fatalf("diff: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(settings); string(b) != orig {
		t.Fatal("wrote without --write")
	}
	if code, _, errs := runCLI(t, "", "vscode", "--write"); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(settings)
	if !strings.Contains(string(b), "// keep me") || !strings.Contains(string(b), `"devbox-gpu1": "linux"`) {
		t.Fatalf("written:\n%s", b)
	}
	code, out, errs := runCLI(t, "", "vscode", "--write")
	if code != 0 || out != "" || !strings.Contains(errs, "nothing changed") {
		t.Fatalf("second run: %d %q %q", code, out, errs)
	}
}
