// Package all links every domain and every backend into a binary: import it
// for its side effects. Add a line here when adding a domain or a backend.
package all

import (
	_ "plinth.dev/plinth/capabilities/access"
	_ "plinth.dev/plinth/capabilities/access/memory"
	_ "plinth.dev/plinth/capabilities/access/postgres"
	_ "plinth.dev/plinth/capabilities/audit"
	_ "plinth.dev/plinth/capabilities/audit/memory"
	_ "plinth.dev/plinth/capabilities/audit/postgres"
	_ "plinth.dev/plinth/capabilities/customers"
	_ "plinth.dev/plinth/capabilities/customers/memory"
	_ "plinth.dev/plinth/capabilities/customers/postgres"
	_ "plinth.dev/plinth/capabilities/ledger"
	_ "plinth.dev/plinth/capabilities/ledger/memory"
	_ "plinth.dev/plinth/capabilities/ledger/postgres"
	_ "plinth.dev/plinth/capabilities/resources"
	_ "plinth.dev/plinth/capabilities/resources/composite"
)
