"""Push addresses: the app registers the device's FCM token or JPush registration id for
its user (R20), and removes it at logout. Push notices reach the live tokens; a token the
provider reports dead is marked invalid by the notifier. A token that is live for another
user is refused (409): it moves only after that user's logout (or once the provider
reported it dead), so knowing a token is not enough to divert someone's notices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway import deps
from gateway.auth import USER, Principal, ensure_user_access, require
from gateway.deps import Out, UserId, db
from gateway.errors import ApiError, responses
from sentinel.models import NoCard
from store.devices import DeviceTokenTaken, devices_of, forget_device, register_device

router = APIRouter(tags=["devices"])

TOKEN_PATTERN = r"^[A-Za-z0-9_:.\-]+$"
Token = Field(min_length=8, max_length=512, pattern=TOKEN_PATTERN)


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["fcm", "jpush"]
    token: Annotated[str, NoCard] = Token
    platform: Literal["android", "ios", "web"] | None = None


class DeviceOut(Out):
    provider: str
    token: str
    platform: str | None = None
    registered_at: datetime
    invalid_at: datetime | None = None
    invalid_reason: str | None = None


class DeviceList(BaseModel):
    devices: list[DeviceOut]


@router.post(
    "/v1/users/{user_id}/devices",
    response_model=DeviceOut,
    summary="Register this device for push notices (idempotent)",
    description="The user's own token only. Registering a token again revives it. 409 when the token is live "
    "for another user (it moves once that user logs out on the device, or the provider reports it dead).",
    responses=responses(400, 401, 403, 409, 413, 422),
)
async def register(
    user_id: UserId, body: DeviceIn, who: Principal = Depends(require(USER)), engine=Depends(deps.engine)
) -> DeviceOut:
    ensure_user_access(who, user_id)
    try:
        row = await db(register_device, engine, user_id, body.provider, body.token, body.platform)
    except DeviceTokenTaken:
        raise ApiError(
            409,
            "token registered to another user",
            "this push token is live for another user; it can be registered here once that user "
            "logs out on the device (DELETE .../devices/{provider}/{token}) or it stops working",
        ) from None
    return DeviceOut.model_validate(row)


@router.get(
    "/v1/users/{user_id}/devices",
    response_model=DeviceList,
    summary="The user's registered devices, with the ones the provider reported dead",
    responses=responses(401, 403, 422),
)
async def list_devices(
    user_id: UserId, who: Principal = Depends(require(USER)), engine=Depends(deps.engine)
) -> DeviceList:
    ensure_user_access(who, user_id)
    return DeviceList(devices=[DeviceOut.model_validate(d) for d in await db(devices_of, engine, user_id)])


@router.delete(
    "/v1/users/{user_id}/devices/{provider}/{token}",
    status_code=204,
    summary="Stop push to this device (logout)",
    responses=responses(401, 403, 404, 422),
)
async def unregister(
    user_id: UserId,
    provider: Literal["fcm", "jpush"],
    token: Annotated[str, Path(min_length=8, max_length=512, pattern=TOKEN_PATTERN), NoCard],
    who: Principal = Depends(require(USER)),
    engine=Depends(deps.engine),
) -> None:
    ensure_user_access(who, user_id)
    if not await db(forget_device, engine, provider, token, "unregistered by the app", user_id):
        raise ApiError(404, "not_found", "no such device for this user")
