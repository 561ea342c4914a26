package protocol

import "errors"

// ErrServerURL is in the chain of every error about a line server base URL that is not
// http(s)://host[:port] (a mistyped flashline.server= or --server), wherever it was found, so
// that the device can say what to fix (errors.Is).
var ErrServerURL = errors.New("bad line server URL")

// BadServerURL returns err with its message unchanged and ErrServerURL in its chain.
func BadServerURL(err error) error { return badServerURL{err} }

type badServerURL struct{ err error }

func (e badServerURL) Error() string   { return e.err.Error() }
func (e badServerURL) Unwrap() []error { return []error{ErrServerURL, e.err} }
