package nats

// RenewLease runs one campaign round of l, as its timer does.
var RenewLease = (*Lease).renew
