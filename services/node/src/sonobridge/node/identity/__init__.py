"""The single node's OpenID provider: login page, tokens, JWKS, logout."""
