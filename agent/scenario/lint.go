package scenario

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/flashline/flashline/agent/checks"
)

// LintFile parses the scenario at path and returns every problem in it (none: it is valid).
// A file that cannot be read is one problem at 1:1.
func LintFile(path string, reg *checks.Registry) ErrorList {
	f, err := os.Open(path)
	if err != nil {
		return ErrorList{{File: path, Line: 1, Col: 1, Msg: err.Error()}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return ErrorList{{File: path, Line: 1, Col: 1, Msg: fmt.Sprintf("read: %v", err)}}
	}
	return Lint(path, data, reg)
}

// Lint returns every problem in a scenario held in data.
func Lint(file string, data []byte, reg *checks.Registry) ErrorList {
	_, err := Parse(file, data, reg)
	var list ErrorList
	if errors.As(err, &list) {
		return list
	}
	if err != nil {
		return ErrorList{{File: file, Line: 1, Col: 1, Msg: err.Error()}}
	}
	return nil
}

// ParseFile reads and parses the scenario at path.
func ParseFile(path string, reg *checks.Registry) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(path, data, reg)
}
