// Package archtest holds tests that enforce ARCHITECTURE.md's import rules.
package archtest
