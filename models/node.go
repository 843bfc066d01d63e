package models

// Node is implemented by every entity that is a GraphQL Node (resolvable by
// its global ID through node(id)).
type Node interface{ IsNode() }

// IsNode marks Account as a Node.
func (Account) IsNode() {}

// IsNode marks User as a Node.
func (User) IsNode() {}

// IsNode marks InboxMessage as a Node.
func (InboxMessage) IsNode() {}

// IsNode marks Resource as a Node.
func (Resource) IsNode() {}
