-- Argo CD resource health for modelops.io/ModelDeployment (Lua 5.1, as Argo CD's gopher-lua).
-- Healthy: the stable version serves 100% and nothing is failing. Progressing: deploying, a
-- canary walking its steps, or a retraining Job running. Suspended: a rollout paused by a
-- person, waiting for Manual promotion, or without analysis data. Degraded: rolled back,
-- failing after promotion, or unable to serve the spec.
hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for modelops to reconcile"
  return hs
end
local status = obj.status
if obj.metadata ~= nil and obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for modelops to observe generation " .. obj.metadata.generation
  return hs
end
local message = status.message or ""
local phase = status.phase
if status.canary ~= nil and status.canary.pausedReason ~= nil then
  hs.status = "Suspended"
  hs.message = "Rollout of version " .. tostring(status.canary.version) .. " paused: " .. status.canary.pausedReason
  return hs
end
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Progressing" or phase == "Pending" or phase == "Retraining" then
  hs.status = "Progressing"
elseif phase == "RolledBack" or phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Unknown"
end
hs.message = message
return hs
