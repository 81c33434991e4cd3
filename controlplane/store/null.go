package store

import (
	"database/sql/driver"
	"fmt"
)

// Optional values are NULL in the database and the zero value in Go.

// nullString stores "" as NULL.
func nullString(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// nullID stores the id 0 as NULL.
func nullID(id int64) driver.Value {
	if id == 0 {
		return nil
	}
	return id
}

// optString scans a nullable text column; NULL becomes "".
type optString struct{ s *string }

func (o optString) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*o.s = ""
	case string:
		*o.s = v
	case []byte:
		*o.s = string(v)
	default:
		return fmt.Errorf("scan text: unsupported type %T", src)
	}
	return nil
}

// optID scans a nullable id column; NULL becomes 0.
type optID int64

func (o *optID) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*o = 0
	case int64:
		*o = optID(v)
	default:
		return fmt.Errorf("scan id: unsupported type %T", src)
	}
	return nil
}
