"""The OAuth 2 code flow every code-flow fake shares: the authorize endpoint and its
consent page, the decision, single-use codes (with PKCE when the client sent a
challenge), the token endpoint with its refresh grant. A provider's fake overrides how
the app authenticates, how the token request is encoded, and what a token looks like."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import FakeProvider, Grant

__all__ = ["FakeCodeFlow"]


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FakeCodeFlow(FakeProvider):
    authorize_path: ClassVar[str] = "/oauth/authorize"
    token_path: ClassVar[str] = "/oauth/token"
    state_required: ClassVar[bool] = False
    token_lifetime: ClassVar[float] = 7200
    # A refresh answers a new refresh token and the used one dies (single use); else
    # the refresh token stays in force and none comes with the answer.
    rotates_refresh: ClassVar[bool] = True

    def oauth_routes(self) -> list[Route]:
        return [
            Route(self.authorize_path, self.authorize, methods=["GET"]),
            Route(self.authorize_path, self.decide, methods=["POST"]),
            Route(self.token_path, self.token, methods=["POST"]),
        ]

    # -- hooks ------------------------------------------------------------------------------

    async def token_fields(self, request: Request) -> dict[str, str]:
        """The token request's fields (a form body unless overridden)."""
        form = await request.form()
        return {k: str(v) for k, v in form.items()}

    def client_credentials(self, request: Request, fields: dict[str, str]) -> tuple[str, str]:
        """The app's id and secret (HTTP Basic unless overridden)."""
        return self.basic_auth(request)

    def check_token_request(self, request: Request, fields: dict[str, str]) -> str | None:
        """A provider-specific reason to refuse the token request (an override)."""
        return None

    def oauth_error(self, status: int, error: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": f"{error} (fake)"}, status)

    def token_response(self, grant: Grant) -> dict[str, Any]:
        """Issue tokens for a grant (opaque strings unless overridden)."""
        access = secrets.token_urlsafe(32)
        return self._issue(grant, access)

    def _issue(self, grant: Grant, access: str, *, with_refresh: bool = True) -> dict[str, Any]:
        self.tokens[access] = (grant, self.now() + self.token_lifetime)
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "scope": " ".join(grant.scopes),
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = grant
            answer["refresh_token"] = refresh
        return answer

    def revoke_account(self, account_id: str) -> None:
        super().revoke_account(account_id)
        for token in [t for t, (g, _) in self.tokens.items() if g.account.id == account_id]:
            del self.tokens[token]
        for token in [t for t, g in self.refresh_tokens.items() if g.account.id == account_id]:
            del self.refresh_tokens[token]

    def bearer_grant(self, request: Request) -> Grant | None:
        """The grant behind the request's bearer token, if it is live. A call with an
        expired token is counted (the service must refresh before it)."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        entry = self.tokens.get(header[7:].strip())
        if entry is None:
            return None
        if entry[1] < self.now():
            self.expired_token_calls += 1
            return None
        return entry[0]

    # -- the endpoints ------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code":
            return Response("response_type must be code", 400)
        if self.state_required and not q.get("state"):
            return Response("state is required", 400)
        if q.get("code_challenge") and q.get("code_challenge_method") != "S256":
            return Response("only S256 code challenges are supported", 400)
        problem = self.check_app(q.get("client_id"), q.get("redirect_uri"))
        if problem:
            return Response(problem, 400)
        return self.consent_page(request, self.authorize_path, q.get("scope", "").split())

    async def decide(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        redirect_uri = form.get("redirect_uri", "")
        problem = self.check_app(form.get("client_id"), redirect_uri)
        if problem:
            return Response(problem, 400)
        back = {"state": form["state"]} if form.get("state") else {}
        if form.get("decision") != "allow":
            return self.redirect_back(
                redirect_uri,
                {"error": "access_denied", "error_description": "User denied access", **back},
            )
        account = self.accounts.get(form.get("account", ""))
        if account is None:
            return Response("unknown account", 400)
        requested = form.get("scope", "").split()
        grant = Grant(
            client_id=form["client_id"],
            redirect_uri=redirect_uri,
            account=account,
            scopes=[s for s in requested if s not in account.withheld_scopes],
            issued_at=self.now(),
            code_challenge=form.get("code_challenge") or None,
        )
        code = secrets.token_urlsafe(24)
        self.codes[code] = (grant, False)
        return self.redirect_back(redirect_uri, {"code": code, **back})

    async def token(self, request: Request) -> Response:
        fields = await self.token_fields(request)
        client_id, secret = self.client_credentials(request, fields)
        if not self.check_secret(client_id, secret):
            return self.oauth_error(401, "invalid_client")
        refused = self.check_token_request(request, fields)
        if refused:
            return self.oauth_error(400, refused)
        grant_type = fields.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.redeem_code(
                fields.get("code", ""),
                client_id,
                fields.get("redirect_uri"),
                fields.get("code_verifier"),
            )
            if grant is None:
                return self.oauth_error(400, "invalid_grant")
            return JSONResponse(self.token_response(grant))
        if grant_type == "refresh_token":
            self.refresh_attempts += 1
            presented = fields.get("refresh_token", "")
            # rotating: a refresh token is gone once used, a new one comes with the answer
            old = (
                self.refresh_tokens.pop(presented, None)
                if self.rotates_refresh
                else self.refresh_tokens.get(presented)
            )
            if old is None or old.client_id != client_id:
                return self.oauth_error(400, "invalid_grant")
            self.refreshes += 1
            answer = self.token_response(old)
            if not self.rotates_refresh:
                self.refresh_tokens.pop(answer.pop("refresh_token", ""), None)
            return JSONResponse(answer)
        return self.oauth_error(400, "unsupported_grant_type")

    def redeem_code(
        self, code: str, client_id: str, redirect_uri: str | None, verifier: str | None
    ) -> Grant | None:
        """The grant behind a code, spending it; None when it is unknown, used, expired,
        bound to another app or redirect_uri, or its PKCE verifier does not match."""
        self.exchange_attempts += 1
        self.code_attempts[code] += 1
        entry = self.codes.get(code)
        if entry is None:
            return None
        grant, used = entry
        self.codes[code] = (grant, True)
        if used or self.now() - grant.issued_at > self.code_ttl:
            return None
        if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
            return None
        if grant.code_challenge and (not verifier or s256(verifier) != grant.code_challenge):
            return None
        self.exchanges[code] += 1
        return grant
