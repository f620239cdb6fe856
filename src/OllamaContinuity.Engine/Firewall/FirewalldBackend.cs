using System.Globalization;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// firewalld: a rich "accept from source" plus a "drop port" rule drops the trusted clients too (deny rich rules are
/// evaluated first). So the module uses a dedicated zone (<c>ollama-PORT</c>) holding the allowed sources and the
/// port: source zones are chosen before interface zones, and the port must not be open in any other zone, so the
/// module closes it there and notes those zones in its zone's description (Remove reopens them). Changes are
/// made with --permanent, then --reload. Loopback is always accepted by firewalld itself.
/// </summary>
public sealed class FirewalldBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    private const string DescriptionPrefix = "Managed by OllamaContinuity.";
    private const string ReopenMarker = " Closed the port in zones:";

    public override FirewallBackendKind Kind => FirewallBackendKind.Firewalld;

    public static string ZoneName(int port) => "ollama-" + port.ToString(CultureInfo.InvariantCulture);

    public override string SourceOfTruth(int port) => $"firewall-cmd --permanent --list-all-zones; --query-* on zone {ZoneName(port)}";

    private sealed class FirewalldState : FirewallState
    {
        public bool ZoneExists { get; init; }
        public bool PortInZone { get; init; }
        public IReadOnlyList<string> OtherZonesWithPort { get; init; } = [];
        public IReadOnlyList<string> ClosedZones { get; init; } = [];
        public bool RuntimeMatches { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var zone = ZoneName(port);
        var portSpec = PortSpec(port);
        var state = await QueryAsync(cancellationToken, "firewall-cmd", "--state").ConfigureAwait(false);
        if (!state.Succeeded)
        {
            throw new FirewallBackendNotFoundException($"firewalld is not running (firewall-cmd --state: {(state.StandardError + state.StandardOutput).Trim()}). Start it, or choose another backend with -Backend.");
        }

        var all = await QueryAsync(cancellationToken, "firewall-cmd", "--permanent", "--list-all-zones").ConfigureAwait(false);
        var zones = ParseZones(all.StandardOutput);
        var ours = zones.GetValueOrDefault(zone);
        var others = zones.Where(z => z.Key != zone && z.Value.GetValueOrDefault("ports", "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(portSpec))
            .Select(z => z.Key).Order(StringComparer.Ordinal).ToArray();
        var sources = ours is null ? [] : ParseAll(ours.GetValueOrDefault("sources", "").Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var portInZone = ours is not null && ours.GetValueOrDefault("ports", "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(portSpec);
        var closed = Array.Empty<string>();
        var runtime = false;
        if (ours is not null)
        {
            var description = await QueryAsync(cancellationToken, "firewall-cmd", "--permanent", "--zone=" + zone, "--get-description").ConfigureAwait(false);
            var text = description.StandardOutput.Trim();
            var at = text.IndexOf(ReopenMarker, StringComparison.Ordinal);
            closed = at < 0 ? [] : text[(at + ReopenMarker.Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var queryPort = await QueryAsync(cancellationToken, "firewall-cmd", "--zone=" + zone, "--query-port=" + portSpec).ConfigureAwait(false);
            runtime = queryPort.Succeeded;
            foreach (var s in sources)
            {
                runtime &= (await QueryAsync(cancellationToken, "firewall-cmd", "--zone=" + zone, "--query-source=" + s.ToShort()).ConfigureAwait(false)).Succeeded;
            }
        }

        var warnings = others.Select(z => $"Port {portSpec} is also open in firewalld zone '{z}', so sources outside -AllowFrom can reach it there.").ToList();
        return new FirewalldState
        {
            Present = ours is not null,
            Active = ours is not null && portInZone && sources.Count > 0 && runtime && others.Length == 0,
            AllowFrom = sources,
            ZoneExists = ours is not null,
            PortInZone = portInZone,
            OtherZonesWithPort = others,
            ClosedZones = closed,
            RuntimeMatches = runtime,
            Warnings = warnings,
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (FirewalldState)current;
        var zone = ZoneName(request.Port);
        var portSpec = PortSpec(request.Port);
        var steps = new List<FirewallStep>();
        if (!s.ZoneExists)
        {
            steps.Add(Step(Fw("--permanent", "--new-zone=" + zone), Fw("--permanent", "--delete-zone=" + zone)));
        }

        var closed = s.ClosedZones.Union(s.OtherZonesWithPort).Order(StringComparer.Ordinal).ToArray();
        if (!s.ZoneExists || !closed.SequenceEqual(s.ClosedZones))
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--set-description=" + Description(closed)),
                s.ZoneExists ? Fw("--permanent", "--zone=" + zone, "--set-description=" + Description(s.ClosedZones)) : null));
        }

        foreach (var n in request.AllowFrom.Except(s.AllowFrom))
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--add-source=" + n.ToShort()), Fw("--permanent", "--zone=" + zone, "--remove-source=" + n.ToShort())));
        }

        foreach (var n in s.AllowFrom.Except(request.AllowFrom))
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--remove-source=" + n.ToShort()), Fw("--permanent", "--zone=" + zone, "--add-source=" + n.ToShort())));
        }

        if (!s.PortInZone)
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--add-port=" + portSpec), Fw("--permanent", "--zone=" + zone, "--remove-port=" + portSpec)));
        }

        foreach (var other in s.OtherZonesWithPort)
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + other, "--remove-port=" + portSpec), Fw("--permanent", "--zone=" + other, "--add-port=" + portSpec)));
        }

        if (steps.Count > 0 || !s.RuntimeMatches)
        {
            steps.Add(Step(Fw("--reload"), Fw("--reload")));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (FirewalldState)current;
        if (!s.ZoneExists)
        {
            return [];
        }

        var zone = ZoneName(port);
        var portSpec = PortSpec(port);
        var steps = new List<FirewallStep>();
        foreach (var other in s.ClosedZones.Except(s.OtherZonesWithPort))
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + other, "--add-port=" + portSpec), Fw("--permanent", "--zone=" + other, "--remove-port=" + portSpec)));
        }

        // Emptied before it is deleted, so a rollback (new zone, port, sources: the undos in reverse) rebuilds it.
        foreach (var n in s.AllowFrom)
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--remove-source=" + n.ToShort()), Fw("--permanent", "--zone=" + zone, "--add-source=" + n.ToShort())));
        }

        if (s.PortInZone)
        {
            steps.Add(Step(Fw("--permanent", "--zone=" + zone, "--remove-port=" + portSpec), Fw("--permanent", "--zone=" + zone, "--add-port=" + portSpec)));
        }

        steps.Add(Step(Fw("--permanent", "--delete-zone=" + zone), Fw("--permanent", "--new-zone=" + zone)));
        steps.Add(Step(Fw("--reload"), Fw("--reload")));
        return steps;
    }

    private static string Description(IReadOnlyList<string> closed) =>
        DescriptionPrefix + " Allows the port from the sources of this zone only (Set-OllamaFirewallRule)." + (closed.Count == 0 ? "" : ReopenMarker + " " + string.Join(' ', closed));

    private static string PortSpec(int port) => port.ToString(CultureInfo.InvariantCulture) + "/tcp";

    private static CommandInvocation Fw(params string[] args) => Cmd("firewall-cmd", args);

    /// <summary>Parses <c>firewall-cmd --list-all-zones</c>: a zone name at column 0, then "  key: value" lines.</summary>
    internal static Dictionary<string, Dictionary<string, string>> ParseZones(string text)
    {
        var zones = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        Dictionary<string, string>? zone = null;
        foreach (var raw in text.Split('\n'))
        {
            if (raw.Trim().Length == 0)
            {
                continue;
            }

            if (!char.IsWhiteSpace(raw[0]))
            {
                zone = new Dictionary<string, string>(StringComparer.Ordinal);
                zones[raw.Trim().Split(' ')[0]] = zone;
                continue;
            }

            var colon = raw.IndexOf(':', StringComparison.Ordinal);
            if (zone is not null && colon > 0)
            {
                zone[raw[..colon].Trim()] = raw[(colon + 1)..].Trim();
            }
        }

        return zones;
    }
}
