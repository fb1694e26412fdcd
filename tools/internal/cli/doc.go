// Package cli holds what Ferry's commands share: logger set-up, address
// parsing and the transport choice by address scheme.
package cli
