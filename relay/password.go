package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: the OWASP minimum (19 MiB, 2 passes), a few tens
// of milliseconds per check.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash of password in the PHC string
// format, for RoomConfig.PasswordHash.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

type argonHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func parseHash(s string) (*argonHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return nil, fmt.Errorf("password hash is not an argon2id PHC string (make one with: parleyd hash-password)")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return nil, fmt.Errorf("password hash has argon2 version %q, want v=%d", parts[2], argon2.Version)
	}
	h := new(argonHash)
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memory, &h.time, &h.threads); err != nil {
		return nil, fmt.Errorf("password hash parameters %q: %w", parts[3], err)
	}
	if h.memory > 1<<20 || h.time > 16 || h.threads == 0 {
		return nil, fmt.Errorf("password hash parameters %q are out of range", parts[3])
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("password hash salt: %w", err)
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) == 0 {
		return nil, fmt.Errorf("password hash key: %v", err)
	}
	return h, nil
}

// passwordChecker verifies room passwords. argon2id is deliberately slow
// and memory-hungry, so checks run a few at a time, and a password that was
// verified once is remembered by its SHA-256: a stampede of reconnecting
// members costs one argon2 run, not thousands.
type passwordChecker struct {
	sem chan struct{}

	mu   sync.Mutex
	good map[[32]byte]string // sha256(hash || password) → hash it matched
}

func newPasswordChecker(parallel int) *passwordChecker {
	return &passwordChecker{sem: make(chan struct{}, parallel), good: make(map[[32]byte]string)}
}

// check reports whether password matches the PHC hash.
func (pc *passwordChecker) check(hash, password string) bool {
	memo := sha256.Sum256([]byte(hash + "\x00" + password))
	pc.mu.Lock()
	_, ok := pc.good[memo]
	pc.mu.Unlock()
	if ok {
		return true
	}
	h, err := parseHash(hash)
	if err != nil {
		return false
	}
	pc.sem <- struct{}{}
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	<-pc.sem
	if subtle.ConstantTimeCompare(key, h.key) != 1 {
		return false
	}
	pc.mu.Lock()
	if len(pc.good) > 1024 {
		clear(pc.good)
	}
	pc.good[memo] = hash
	pc.mu.Unlock()
	return true
}
