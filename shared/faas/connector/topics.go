package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
)

// TopicAnnotation is the function annotation that lists the NATS subjects a
// function is invoked for, comma-separated, as in OpenFaaS's connector-sdk.
const TopicAnnotation = "topic"

// ParseTopics splits a topic annotation into NATS subjects (wildcards
// allowed). Entries are trimmed; empty entries are ignored; repeats are
// dropped; entries that are not valid subjects are returned in invalid so the
// caller can report them.
func ParseTopics(annotation string) (topics, invalid []string) {
	seen := map[string]bool{}
	for _, t := range strings.Split(annotation, ",") {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		if ValidSubject(t) {
			topics = append(topics, t)
		} else {
			invalid = append(invalid, t)
		}
	}
	return topics, invalid
}

// ValidSubject reports whether s is a NATS subject a consumer can filter on:
// dot-separated non-empty tokens without spaces or control characters, where
// "*" and ">" only appear as whole tokens and ">" only last.
func ValidSubject(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return false
		case tok == ">":
			if i != len(toks)-1 {
				return false
			}
		case tok == "*":
		case strings.ContainsAny(tok, "*>"):
			return false
		}
		for _, r := range tok {
			if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
				return false
			}
		}
	}
	return true
}

// subjectMatches reports whether the literal subject falls under pattern.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// validFunctionName accepts OpenFaaS function names (DNS-1123 labels) and
// underscores: the name goes into a URL path, a consumer name and the
// dead-letter subject, so dots, wildcards, slashes and spaces are refused.
func validFunctionName(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '-' || r == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// DurableName is the JetStream durable consumer that delivers topic to
// function: "fn-<function>-<8 hex digits of sha256(topic)>". It is stable
// across restarts and replicas (so a restarted connector resumes where the
// last one stopped) and valid as a consumer name for any subject, wildcards
// included. Changing the topic's text (not just its spacing) makes a new
// durable, which starts at the beginning of the stream.
func DurableName(function, topic string) string {
	sum := sha256.Sum256([]byte(topic))
	return "fn-" + function + "-" + hex.EncodeToString(sum[:4])
}
