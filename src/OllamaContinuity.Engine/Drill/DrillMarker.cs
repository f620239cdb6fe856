using System.Text.Json;
using System.Text.Json.Serialization;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Http;
using OllamaContinuity.Native;

namespace OllamaContinuity.Drill;

/// <summary>
/// The record of an active block, written before the block is applied and deleted once it is removed. If a drill
/// dies (crash, killed process, power loss), the next drill or Stop-FailoverDrill finds it and removes the block.
/// </summary>
public sealed record DrillMarker
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public required string DrillId { get; init; }
    public DrillBlockMethod Method { get; init; }
    public OutboundFirewall? Firewall { get; init; }
    public string? PfToken { get; init; }
    public required string CloudEndpoint { get; init; }
    /// <summary>The blocked cloud URL's scheme, host and port (no path, no secrets).</summary>
    public required string BlockedOrigin { get; init; }
    public IReadOnlyList<string> Addresses { get; init; } = [];
    /// <summary>A contingency block: the workflow put under contingency.</summary>
    public string? Workflow { get; init; }
    /// <summary>A contingency block: the scope of its entry (User or Machine).</summary>
    public ContinuityScope? ContingencyScope { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public int ProcessId { get; init; } = Environment.ProcessId;

    /// <summary>Who ran the drill (the account name of its process), so another administrator knows whose block it is.</summary>
    public string? User { get; init; } = Environment.UserName;

    /// <summary>The machine the drill ran on.</summary>
    public string? Host { get; init; } = Environment.MachineName;

    /// <summary>"drill ID by USER (process PID), started TIME".</summary>
    public string Describe() =>
        $"drill {DrillId} by {(string.IsNullOrEmpty(User) ? "an unknown user" : User)} (process {ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)}), started {StartedAt.ToString("u", System.Globalization.CultureInfo.InvariantCulture)}";

    public static DrillMarker? Read(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<DrillMarker>(File.ReadAllBytes(path), Json) : null;
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            return null;
        }
    }

    public void Write(string path) => OwnerOnlyFile.WriteAllBytesAtomic(path, JsonSerializer.SerializeToUtf8Bytes(this, Json));
}

/// <summary>What Stop-FailoverDrill (and a drill's preflight) did about a block left behind.</summary>
public sealed class DrillCleanupResult
{
    /// <summary>A marker of an active block was found.</summary>
    public bool Found { get; init; }
    /// <summary>The block was removed (or was already gone) and the marker deleted.</summary>
    public bool Removed { get; init; }
    public bool Changed { get; init; }
    public string? DrillId { get; init; }
    public DrillBlockMethod? Method { get; init; }
    public string? CloudEndpoint { get; init; }
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>Whose drill it was: the user and process recorded in the marker (null when there was no readable marker).</summary>
    public string? Owner { get; init; }

    /// <summary>The marker file that was read (null when none was found).</summary>
    public string? MarkerPath { get; init; }

    public string Detail { get; init; } = "";
}

/// <summary>
/// Where drill markers live. A drill run as root or an administrator keeps its marker machine-wide (Linux
/// <c>/var/lib/OllamaContinuity</c>, Windows <c>%ProgramData%\OllamaContinuity</c>, macOS
/// <c>/Library/Application Support/OllamaContinuity</c>; under <c>$OLLAMACONTINUITY_STATE_DIR/Machine</c> when that is
/// set), so Stop-FailoverDrill run by any administrator finds it; a drill run by an ordinary user (a simulated one)
/// keeps it in the user's state directory. Stop-FailoverDrill looks in both.
/// </summary>
public static class DrillMarkerPaths
{
    public const string FileName = "drill-block.json";

    public static string Machine => Path.Combine(StatePaths.Directory(ContinuityScope.Machine), FileName);

    public static string User => Path.Combine(StatePaths.Directory(ContinuityScope.User), FileName);

    /// <summary>The places a marker may be, machine-wide first.</summary>
    public static IReadOnlyList<string> Candidates => new[] { Machine, User }.Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>The first marker that exists, or null.</summary>
    public static string? FindExisting() => Candidates.FirstOrDefault(File.Exists);

    /// <summary>The machine-wide path when this process is privileged and the directory can be created, else the user's.</summary>
    public static string ForNewDrill()
    {
        if (Environment.IsPrivilegedProcess)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Machine)!);
                return Machine;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A read-only /var/lib (an image, a locked-down host): the user's directory still works.
            }
        }

        return User;
    }
}

public static class DrillCleanup
{
    /// <summary>
    /// Removes a block recorded in <paramref name="markerPath"/> (firewall rules through <paramref name="runner"/>, a
    /// simulated block in <paramref name="pool"/>). A firewall block is found and removed by its own fixed name (nft
    /// table, iptables chain, Windows rule, pf anchor) on every firewall of the platform, whatever the marker says:
    /// when the marker names a firewall block, is damaged, or <paramref name="sweepFirewall"/> is set (Stop-FailoverDrill,
    /// a firewall drill's preflight). A contingency block is turned off in <paramref name="contingency"/> (the default
    /// value is <see cref="ContingencyService.Default"/>) for the marker's workflow and scope. Removed is true only when no block is left.
    /// </summary>
    public static async Task<DrillCleanupResult> RemoveLeftoverAsync(string markerPath, ICommandRunner runner, HttpClientPool? pool, CancellationToken ct, bool sweepFirewall = false,
        ContingencyService? contingency = null)
    {
        var exists = File.Exists(markerPath);
        var marker = exists ? DrillMarker.Read(markerPath) : null;
        var damaged = exists && marker is null;
        var firewallMarker = marker?.Method == DrillBlockMethod.Firewall;
        var details = new List<string>();
        var problems = new List<string>();
        var found = exists;
        if (damaged)
        {
            details.Add("the marker was unreadable (damaged)");
        }

        if (marker is { Method: DrillBlockMethod.Simulated })
        {
            var unblocked = pool is not null && Uri.TryCreate(marker.BlockedOrigin, UriKind.Absolute, out var origin) && pool.Blocklist.Unblock(origin);
            details.Add(unblocked ? "lifted the simulated block in this session"
                : marker.ProcessId == Environment.ProcessId ? "the simulated block was already lifted"
                : $"the simulated block ended with its process ({marker.ProcessId}); only the marker was left");
        }

        if (marker is { Method: DrillBlockMethod.Contingency, Workflow: { } workflow })
        {
            var scope = marker.ContingencyScope ?? ContinuityScope.User;
            try
            {
                var off = (contingency ?? ContingencyService.Default).Disable(scope, [workflow]);
                details.Add(off.Any(c => c.Changed) ? $"turned off the drill's contingency for the workflow '{workflow}' ({scope} scope)" : $"the drill's contingency for the workflow '{workflow}' ({scope} scope) was already off");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or InvalidDataException)
            {
                problems.Add($"the drill's contingency for the workflow '{workflow}' ({scope} scope) could not be turned off: {e.Message}");
            }
        }

        if (firewallMarker || damaged || sweepFirewall)
        {
            // Strict: the marker says (or may say) a firewall block exists, so a firewall we cannot check is a problem.
            var strict = firewallMarker || damaged;
            var firewalls = OutboundBlocker.PlatformFirewalls();
            if (marker?.Firewall is { } named && !firewalls.Contains(named))
            {
                firewalls = [named, .. firewalls];
            }

            foreach (var fw in firewalls)
            {
                var blocker = new OutboundBlocker(runner, fw);
                var present = await blocker.IsPresentAsync(ct).ConfigureAwait(false);
                if (present == false || (present is null && !strict))
                {
                    if (present is null)
                    {
                        details.Add($"could not check {fw} for a drill block ({blocker.Name}); run as root or an administrator to check");
                    }

                    continue;
                }

                found = true;
                var removeProblems = await blocker.RemoveAsync(marker?.PfToken, ct).ConfigureAwait(false);
                var after = await blocker.IsPresentAsync(ct).ConfigureAwait(false);
                if (after == false && removeProblems.Count == 0 || after == false && present is null)
                {
                    details.Add(present == true ? $"removed the {fw} block {blocker.Name}" + (marker?.Addresses is { Count: > 0 } a ? $" of {string.Join(", ", a)}" : "") : $"no {fw} block {blocker.Name} is left");
                }
                else
                {
                    problems.Add($"the {fw} block {blocker.Name} could not be removed" + (removeProblems.Count > 0 ? ": " + string.Join("; ", removeProblems) : after is null ? " (its state cannot be read)" : " (it is still in place)"));
                }
            }

            if (!exists && found)
            {
                details.Insert(0, "no marker, but a drill block was in place (found by its name)");
            }
        }

        if (!found)
        {
            return new DrillCleanupResult { Detail = details.Count == 0 ? "no active drill block" : "no active drill block found; " + string.Join("; ", details) };
        }

        if (problems.Count == 0 && exists)
        {
            File.Delete(markerPath);
        }

        var owner = marker?.Describe();
        return new DrillCleanupResult
        {
            Found = true, Removed = problems.Count == 0, Changed = true, DrillId = marker?.DrillId, Method = marker?.Method ?? (damaged || !exists ? DrillBlockMethod.Firewall : (DrillBlockMethod?)null),
            CloudEndpoint = marker?.CloudEndpoint, StartedAt = marker?.StartedAt, Owner = owner is null ? null : $"{marker!.User} (process {marker.ProcessId})", MarkerPath = exists ? markerPath : null,
            Detail = (owner is null ? "" : owner + ": ") + (problems.Count == 0 ? string.Join("; ", details) : "could not remove the block: " + string.Join("; ", problems.Concat(details))),
        };
    }
}
