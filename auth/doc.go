// Package auth issues and verifies client tokens (HS256 JWTs with key
// rotation by kid) and checks producer API keys and the admin token.
//
// A token without a kid is checked against the current key, so an existing
// auth service that holds JOBCAST_JWT_SECRET can mint tokens too.
package auth
