using System.Globalization;
using System.Net;
using System.Text.Json;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// Windows Defender Firewall through the NetSecurity cmdlets. On Windows a Block rule beats every Allow rule
/// (MS-FASP), so the seed's "allow the subnet + block Any" pair blocks everyone. The module instead relies on the
/// default inbound action (Block) and adds one Allow rule scoped to the sources (<c>-RemoteAddress</c>), and
/// disables every other enabled inbound Allow rule that opens the port (a rule for the port, or a program rule for
/// ollama.exe); their names are kept in the module rule's Description so Remove re-enables exactly those.
/// Loopback traffic is not filtered by Windows Defender Firewall, so local clients keep working.
/// <para>
/// Each <see cref="CommandInvocation"/> here is a cmdlet call, not a program: FileName is the cmdlet and Arguments
/// are "-Parameter", "value" pairs (values of <see cref="ArrayParameters"/> are comma-separated lists). The cmdlet
/// layer runs them in the current PowerShell session and answers each output object as one JSON line.
/// </para>
/// </summary>
public sealed class WindowsFirewallBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    public const string Group = "OllamaContinuity";
    private const string DisabledMarker = " Disabled rules: ";

    /// <summary>Parameters whose value is a list (comma-separated in the invocation).</summary>
    public static IReadOnlySet<string> ArrayParameters { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "RemoteAddress", "LocalPort" };

    public override FirewallBackendKind Kind => FirewallBackendKind.WindowsFirewall;

    public static string RuleName(int port) => "OllamaContinuity-Ollama-TCP-" + port.ToString(CultureInfo.InvariantCulture);

    public override string SourceOfTruth(int port) => $"Get-NetFirewallRule -Name {RuleName(port)}; Get-NetFirewallAddressFilter; Get-NetFirewallPortFilter; Get-NetFirewallProfile";

    private sealed class WinState : FirewallState
    {
        public bool RuleEnabled { get; init; }
        public string? Description { get; init; }
        public IReadOnlyList<string> RemoteAddress { get; init; } = [];
        public IReadOnlyList<string> Openers { get; init; } = [];
        public IReadOnlyList<string> Remembered { get; init; } = [];
        public IReadOnlySet<string> Existing { get; init; } = new HashSet<string>();
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var name = RuleName(port);
        var ours = (await Objects(cancellationToken, "Get-NetFirewallRule", "-Group", Group).ConfigureAwait(false)).FirstOrDefault(o => Str(o, "Name") == name);
        var rules = await Objects(cancellationToken, "Get-NetFirewallRule", "-Direction", "Inbound", "-Action", "Allow").ConfigureAwait(false);
        var ports = (await Objects(cancellationToken, "Get-NetFirewallPortFilter", "-All").ConfigureAwait(false)).GroupBy(o => Str(o, "InstanceID")).ToDictionary(g => g.Key, g => g.First());
        var apps = (await Objects(cancellationToken, "Get-NetFirewallApplicationFilter", "-All").ConfigureAwait(false)).GroupBy(o => Str(o, "InstanceID")).ToDictionary(g => g.Key, g => g.First());
        var addresses = ours is null ? [] : (await Objects(cancellationToken, "Get-NetFirewallAddressFilter", "-All").ConfigureAwait(false)).Where(o => Str(o, "InstanceID") == name).SelectMany(o => Strs(o, "RemoteAddress")).ToArray();
        var profiles = await Objects(cancellationToken, "Get-NetFirewallProfile").ConfigureAwait(false);

        var openers = new List<string>();
        foreach (var r in rules)
        {
            var n = Str(r, "Name");
            if (n == name || Str(r, "Group") == Group || !IsTrue(Str(r, "Enabled")))
            {
                continue;
            }

            var pf = ports.GetValueOrDefault(n);
            var protocol = pf is null ? "Any" : Str(pf, "Protocol");
            var localPorts = pf is null ? ["Any"] : Strs(pf, "LocalPort");
            var program = apps.GetValueOrDefault(n) is { } af ? Str(af, "Program") : "Any";
            var isOllama = program.EndsWith("\\ollama.exe", StringComparison.OrdinalIgnoreCase) || program.EndsWith("\\ollama app.exe", StringComparison.OrdinalIgnoreCase);
            if (protocol is "TCP" or "Any" or "6" && (Covers(localPorts, port) || (isOllama && localPorts.Contains("Any", StringComparer.OrdinalIgnoreCase))))
            {
                openers.Add(n);
            }
        }

        var description = ours is null ? null : Str(ours, "Description");
        var remembered = description is not null && description.IndexOf(DisabledMarker, StringComparison.Ordinal) is var at and >= 0
            ? description[(at + DisabledMarker.Length)..].Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
        var warnings = new List<string>();
        var profilesOk = true;
        foreach (var p in profiles)
        {
            if (!IsTrue(Str(p, "Enabled")))
            {
                profilesOk = false;
                warnings.Add($"The {Str(p, "Name")} firewall profile is disabled: no rule is in force on networks of that profile.");
            }
            else if (Str(p, "DefaultInboundAction") == "Allow")
            {
                profilesOk = false;
                warnings.Add($"The {Str(p, "Name")} profile allows inbound connections by default: the port is open to everyone there.");
            }
        }

        openers.Sort(StringComparer.Ordinal);
        var sources = ParseAll(addresses);
        var enabled = ours is not null && IsTrue(Str(ours, "Enabled"));
        return new WinState
        {
            Present = ours is not null,
            Active = enabled && sources.Count > 0 && openers.Count == 0 && profilesOk,
            AllowFrom = sources,
            RuleEnabled = enabled,
            Description = description,
            RemoteAddress = addresses,
            Openers = openers,
            Remembered = remembered,
            Existing = rules.Select(r => Str(r, "Name")).ToHashSet(StringComparer.Ordinal),
            Warnings = warnings,
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (WinState)current;
        var name = RuleName(request.Port);
        var steps = new List<FirewallStep>();
        foreach (var opener in s.Openers)
        {
            steps.Add(Step(Cmd("Set-NetFirewallRule", "-Name", opener, "-Enabled", "False"), Cmd("Set-NetFirewallRule", "-Name", opener, "-Enabled", "True")));
        }

        var remembered = s.Remembered.Union(s.Openers).Order(StringComparer.Ordinal).ToArray();
        var description = Description(request.Port, remembered);
        var addresses = Addresses(request.AllowFrom);
        if (!s.Present)
        {
            steps.Add(Step(New(name, request.Port, description, addresses), Cmd("Remove-NetFirewallRule", "-Name", name)));
            return steps;
        }

        if (!AllowFrom.SameSet(s.AllowFrom, request.AllowFrom))
        {
            steps.Add(Step(Cmd("Set-NetFirewallRule", "-Name", name, "-RemoteAddress", addresses),
                s.RemoteAddress.Count > 0 ? Cmd("Set-NetFirewallRule", "-Name", name, "-RemoteAddress", string.Join(',', s.RemoteAddress)) : null));
        }

        if (s.Description != description)
        {
            steps.Add(Step(Cmd("Set-NetFirewallRule", "-Name", name, "-Description", description), Cmd("Set-NetFirewallRule", "-Name", name, "-Description", s.Description ?? "")));
        }

        if (!s.RuleEnabled)
        {
            steps.Add(Step(Cmd("Set-NetFirewallRule", "-Name", name, "-Enabled", "True"), Cmd("Set-NetFirewallRule", "-Name", name, "-Enabled", "False")));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (WinState)current;
        var steps = new List<FirewallStep>();
        if (!s.Present)
        {
            return steps;
        }

        var name = RuleName(port);
        steps.Add(Step(Cmd("Remove-NetFirewallRule", "-Name", name),
            New(name, port, s.Description ?? Description(port, s.Remembered), string.Join(',', s.RemoteAddress)) with { Purpose = "restore " + name }));
        foreach (var n in s.Remembered.Where(s.Existing.Contains))
        {
            steps.Add(Step(Cmd("Set-NetFirewallRule", "-Name", n, "-Enabled", "True"), Cmd("Set-NetFirewallRule", "-Name", n, "-Enabled", "False")));
        }

        return steps;
    }

    private static CommandInvocation New(string name, int port, string description, string addresses) =>
        Cmd("New-NetFirewallRule", "-Name", name, "-DisplayName", $"Ollama (TCP {port.ToString(CultureInfo.InvariantCulture)}) from allowed sources only",
            "-Description", description, "-Group", Group, "-Direction", "Inbound", "-Action", "Allow", "-Protocol", "TCP",
            "-LocalPort", port.ToString(CultureInfo.InvariantCulture), "-RemoteAddress", addresses, "-Profile", "Any", "-Enabled", "True");

    private static string Addresses(IEnumerable<IPNetwork> networks) => string.Join(',', networks.Select(n => n.ToShort()));

    private static string Description(int port, IReadOnlyList<string> disabled) =>
        $"Managed by OllamaContinuity (Set-OllamaFirewallRule): TCP {port.ToString(CultureInfo.InvariantCulture)} from the remote addresses of this rule only; the default inbound action blocks the rest." +
        (disabled.Count == 0 ? "" : DisabledMarker + string.Join(" | ", disabled));

    private static bool Covers(IReadOnlyList<string> localPorts, int port) => localPorts.Any(p =>
    {
        var dash = p.IndexOf('-', StringComparison.Ordinal);
        return dash > 0
            ? int.TryParse(p[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var lo) && int.TryParse(p[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var hi) && lo <= port && port <= hi
            : int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var one) && one == port;
    });

    private static bool IsTrue(string value) => value.Equals("True", StringComparison.OrdinalIgnoreCase) || value == "1";

    private async Task<IReadOnlyList<JsonElement?>> Objects(CancellationToken cancellationToken, string cmdlet, params string[] args)
    {
        var r = await QueryAsync(cancellationToken, cmdlet, args).ConfigureAwait(false);
        if (!r.Succeeded)
        {
            return []; // "No MSFT_NetFirewallRule objects found" and friends
        }

        return Lines(r.StandardOutput).Select(l => (JsonElement?)JsonDocument.Parse(l).RootElement.Clone()).ToArray();
    }

    private static string Str(JsonElement? o, string name) =>
        o is { } e && e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.Array ? string.Join(',', v.EnumerateArray().Select(e => e.ToString())) : v.ToString() : "";

    private static IReadOnlyList<string> Strs(JsonElement? o, string name) =>
        o is not { ValueKind: JsonValueKind.Object } e || !e.TryGetProperty(name, out var v) ? []
        : v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => e.ToString()).ToArray()
        : v.ValueKind == JsonValueKind.Null ? [] : [v.ToString()];
}
