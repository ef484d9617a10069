package lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// IDsFile keeps the instance ids of a lab directory: on AWS an instance id is
// never reused, so each lab directory gets its own random ids (a second lab
// must not collide with host keys pinned for the first under the same id in
// ~/.ssh/devgate/known_hosts), and keeps them across restarts, together with
// the host keys in D/instances/<id>/.
const IDsFile = "instance-ids.json"

// idMap maps an instance's Name tag to its id ("name#2" for the second
// instance of that name, "#<index>" for an unnamed one).
type idMap struct {
	path  string
	ids   map[string]string
	seen  map[string]int
	dirty bool
}

func loadIDs(dir string) (*idMap, error) {
	m := &idMap{path: filepath.Join(dir, IDsFile), ids: map[string]string{}, seen: map[string]int{}}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m.ids); err != nil {
		return nil, fmt.Errorf("lab: %s: %w (delete it to get new instance ids)", m.path, err)
	}
	for k, id := range m.ids {
		if !instanceIDRe.MatchString(id) {
			return nil, fmt.Errorf("lab: %s: %q has id %q, not i- and 8 or 17 hex digits", m.path, k, id)
		}
	}
	return m, nil
}

// idFor returns the id kept for this instance, or a new random one in EC2's
// long format (i- and 17 hex digits).
func (m *idMap) idFor(name string, index int) string {
	key := name
	if key == "" {
		key = "#" + strconv.Itoa(index)
	}
	if m.seen[name]++; m.seen[name] > 1 {
		key += "#" + strconv.Itoa(m.seen[name])
	}
	if id, ok := m.ids[key]; ok {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := "i-0" + hex.EncodeToString(b[:])
	m.ids[key] = id
	m.dirty = true
	return id
}

func (m *idMap) save() error {
	if !m.dirty {
		return nil
	}
	b, err := json.MarshalIndent(m.ids, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(m.path, append(b, '\n'), 0o600)
}
