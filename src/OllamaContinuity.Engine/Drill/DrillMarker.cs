using System.Text.Json;
using System.Text.Json.Serialization;
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
    public DateTimeOffset StartedAt { get; init; }
    public int ProcessId { get; init; } = Environment.ProcessId;

    public static DrillMarker? Read(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<DrillMarker>(File.ReadAllBytes(path), Json) : null;
        }
        catch (JsonException)
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
    public string Detail { get; init; } = "";
}

public static class DrillCleanup
{
    /// <summary>Removes a block recorded in <paramref name="markerPath"/> (firewall rules through <paramref name="runner"/>, a simulated block in <paramref name="pool"/>).</summary>
    public static async Task<DrillCleanupResult> RemoveLeftoverAsync(string markerPath, ICommandRunner runner, HttpClientPool? pool, CancellationToken ct)
    {
        var marker = DrillMarker.Read(markerPath);
        if (marker is null)
        {
            if (File.Exists(markerPath))
            {
                File.Delete(markerPath); // unreadable: nothing we can act on
                return new DrillCleanupResult { Found = true, Removed = true, Changed = true, Detail = "an unreadable marker was deleted" };
            }

            return new DrillCleanupResult { Detail = "no active drill block" };
        }

        IReadOnlyList<string> problems = [];
        string detail;
        if (marker.Method == DrillBlockMethod.Firewall)
        {
            var blocker = new OutboundBlocker(runner, marker.Firewall ?? OutboundBlocker.Detect());
            problems = await blocker.RemoveAsync(marker.PfToken, ct).ConfigureAwait(false);
            detail = problems.Count == 0 ? $"removed the {blocker.Firewall} block of {string.Join(", ", marker.Addresses)}" : "could not remove the block: " + string.Join("; ", problems);
        }
        else
        {
            var unblocked = pool is not null && Uri.TryCreate(marker.BlockedOrigin, UriKind.Absolute, out var origin) && pool.Blocklist.Unblock(origin);
            detail = unblocked ? "lifted the simulated block in this session"
                : marker.ProcessId == Environment.ProcessId ? "the simulated block was already lifted"
                : $"the simulated block ended with its process ({marker.ProcessId}); only the marker was left";
        }

        if (problems.Count == 0)
        {
            File.Delete(markerPath);
        }

        return new DrillCleanupResult
        {
            Found = true, Removed = problems.Count == 0, Changed = true, DrillId = marker.DrillId, Method = marker.Method, CloudEndpoint = marker.CloudEndpoint,
            StartedAt = marker.StartedAt, Detail = detail,
        };
    }
}
