package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
)

// decodeJSON reads the body as exactly one JSON object into v. Unknown
// fields are refused by name: a misspelt "timout_s" must not silently
// become the default.
func (c *call) decodeJSON(v any) error { return c.decodeBody(v, false) }

// decodeOptionalJSON is decodeJSON for a body that may be absent or empty.
func (c *call) decodeOptionalJSON(v any) error { return c.decodeBody(v, true) }

func (c *call) decodeBody(v any, optional bool) error {
	dec := json.NewDecoder(c.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return invalidf("request body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, CodeRequestTimeout, "the request body did not arrive in time")
	case errors.Is(err, io.EOF):
		return invalidf("request body is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("malformed JSON: unexpected end of input")
	case errors.As(err, &se):
		return invalidf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return invalidf("request body must be a JSON object, got %s", te.Value)
		}
		return invalidf("field %q must be %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	// encoding/json has no typed error for unknown fields.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalidf("unknown field %s", name)
	}
	return invalidf("malformed request body")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	if strings.HasPrefix(goKind, "int") || strings.HasPrefix(goKind, "uint") || strings.HasPrefix(goKind, "float") {
		return "a number"
	}
	return goKind
}
