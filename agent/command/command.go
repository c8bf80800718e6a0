// Package command is the agent's command wire format: it decodes a command
// payload into a typed Request, validates it at the edge, and shapes replies.
//
// A command is JSON on <prefix>/<id>/cmd:
//
//	{"id":"c1","action":"set","args":{"actuator":"relay1","value":true},"expires":"2026-11-23T10:00:00Z"}
//
// and its reply is {"id":"c1","ok":true,"result":…} or {"id":"c1","ok":false,"error":"…"}.
// Decode never panics; every error is a sentence fit for the reply, and the
// id is returned whenever it could be read so the reply can carry it.
package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxPayload is the largest command accepted, in bytes.
const MaxPayload = 64 << 10

// MaxIDLen bounds a command id.
const MaxIDLen = 128

// Actions.
const (
	ActionPing = "ping"
	ActionRead = "read"
	ActionSet  = "set"
)

// Request is a decoded, validated command.
type Request struct {
	ID      string
	Action  string
	Expires time.Time // zero: never
	Read    ReadArgs
	Set     SetArgs
}

// ReadArgs are the args of "read"; Sensor "" means all sensors.
type ReadArgs struct {
	Sensor string `json:"sensor"`
}

// SetArgs are the args of "set". Value is any JSON value; the actuator
// checks its type.
type SetArgs struct {
	Actuator string
	Value    any
}

// PeekID returns the id of a command payload when it can be read, else nil.
// It does no other validation.
func PeekID(payload []byte) *string {
	var w struct {
		ID string `json:"id"`
	}
	if len(payload) > MaxPayload || json.Unmarshal(payload, &w) != nil || w.ID == "" || len(w.ID) > MaxIDLen {
		return nil
	}
	return &w.ID
}

// Error is a decode failure. ID is the command's id when it could be read.
type Error struct {
	ID  *string
	Msg string
}

func (e *Error) Error() string { return e.Msg }

func fail(id *string, format string, a ...any) error {
	return &Error{ID: id, Msg: fmt.Sprintf(format, a...)}
}

type wire struct {
	ID      json.RawMessage `json:"id"`
	Action  json.RawMessage `json:"action"`
	Args    json.RawMessage `json:"args"`
	Expires json.RawMessage `json:"expires"`
}

// Decode parses and validates one command payload.
func Decode(payload []byte) (Request, error) {
	var r Request
	if len(payload) > MaxPayload {
		return r, fail(nil, "command is %d bytes, over the %d byte limit", len(payload), MaxPayload)
	}
	if !utf8.Valid(payload) {
		return r, fail(nil, "command is not valid UTF-8 JSON")
	}
	// A loose parse first, so the id is known for the reply even when the
	// strict one below refuses an unknown field or trailing data.
	var w wire
	if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return r, fail(nil, "command is not a JSON object: got %s", article(te.Value))
		}
		return r, fail(nil, "command is not a JSON object: %s", jsonErr(err))
	}
	var id *string
	if len(w.ID) == 0 || string(w.ID) == "null" {
		return r, fail(nil, `command has no "id": give each command a unique string id`)
	}
	if err := json.Unmarshal(w.ID, &r.ID); err != nil {
		return r, fail(nil, `"id" must be a string, got %s`, kind(w.ID))
	}
	if r.ID == "" || len(r.ID) > MaxIDLen {
		return r, fail(nil, `"id" must be 1-%d bytes, got %d`, MaxIDLen, len(r.ID))
	}
	id = &r.ID
	if err := strictUnmarshal(payload, &wire{}); err != nil {
		msg := jsonErr(err)
		if strings.HasPrefix(msg, "unknown field") {
			msg += " (a command has id, action, args and expires)"
		}
		return r, fail(id, "command: %s", msg)
	}
	if len(w.Action) == 0 {
		return r, fail(id, `command has no "action": use "ping", "read" or "set"`)
	}
	if err := json.Unmarshal(w.Action, &r.Action); err != nil {
		return r, fail(id, `"action" must be a string, got %s`, kind(w.Action))
	}
	if len(w.Expires) > 0 && string(w.Expires) != "null" {
		var s string
		if err := json.Unmarshal(w.Expires, &s); err != nil {
			return r, fail(id, `"expires" must be an RFC 3339 time string, got %s`, kind(w.Expires))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return r, fail(id, `"expires" %q is not an RFC 3339 time (like "2026-11-23T10:00:00Z")`, s)
		}
		r.Expires = t
	}
	args := w.Args
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return r, fail(id, `"args" must be an object, got %s`, kind(args))
	}
	switch r.Action {
	case ActionPing:
		var none struct{}
		if err := strictUnmarshal(args, &none); err != nil {
			return r, fail(id, `ping takes no args: %s`, jsonErr(err))
		}
	case ActionRead:
		if err := strictUnmarshal(args, &r.Read); err != nil {
			return r, fail(id, `read args: %s (expected {"sensor":"name"} or {})`, jsonErr(err))
		}
	case ActionSet:
		var sa struct {
			Actuator string          `json:"actuator"`
			Value    json.RawMessage `json:"value"`
		}
		if err := strictUnmarshal(args, &sa); err != nil {
			return r, fail(id, `set args: %s (expected {"actuator":"name","value":…})`, jsonErr(err))
		}
		if sa.Actuator == "" {
			return r, fail(id, `set needs args.actuator: the name of an [[actuator]] in the config`)
		}
		if len(sa.Value) == 0 {
			return r, fail(id, `set needs args.value`)
		}
		r.Set.Actuator = sa.Actuator
		if err := json.Unmarshal(sa.Value, &r.Set.Value); err != nil {
			return r, fail(id, "set args.value: %s", jsonErr(err)) // e.g. a number beyond float64
		}
	default:
		return r, fail(id, `unknown action %q: use "ping", "read" or "set"`, clip(r.Action))
	}
	return r, nil
}

// strictUnmarshal decodes exactly one JSON value, refusing unknown fields
// and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// jsonErr rewords encoding/json errors without Go type names.
func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%q must be a %s, got %s", te.Field, goKind(te.Type.Kind().String()), article(te.Value))
		}
		return fmt.Sprintf("expected a JSON object, got %s", article(te.Value))
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.EOF):
		return "empty payload"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(msg, "json: ")
}

func article(w string) string {
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		return "an " + w
	}
	return "a " + w
}

func goKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	}
	return k
}

func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Reply is what the agent answers.
type Reply struct {
	ID     *string `json:"id"`
	OK     bool    `json:"ok"`
	Result any     `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// OK makes a success reply.
func OK(id string, result any) Reply { return Reply{ID: &id, OK: true, Result: result} }

// Fail makes an error reply; id may be nil.
func Fail(id *string, msg string) Reply { return Reply{ID: id, OK: false, Error: msg} }
