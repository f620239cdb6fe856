using System.Globalization;
using System.Net;
using System.Text;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// macOS pf. /etc/pf.conf is never edited (OS updates overwrite it). The rules go to an anchor file under
/// /etc/pf.anchors/ and are loaded into <c>com.apple/ollama-guard-PORT</c>: the stock pf.conf evaluates
/// <c>anchor "com.apple/*"</c>, so a sub-anchor there is in force without touching pf.conf. pf is enabled with
/// <c>pfctl -E</c>, whose reference token is kept next to the anchor file (Remove releases it with <c>pfctl -X</c>,
/// so pf stays enabled if something else enabled it too). A LaunchDaemon loads the anchor and enables pf at boot.
/// </summary>
public sealed class PfBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    public override FirewallBackendKind Kind => FirewallBackendKind.Pf;

    public static string AnchorName(int port) => "com.apple/ollama-guard-" + port.ToString(CultureInfo.InvariantCulture);

    public static string Label(int port) => "com.ollamacontinuity.pf-" + port.ToString(CultureInfo.InvariantCulture);

    public string AnchorFile(int port) => Path.Combine(Environment.PfAnchorDirectory, "ollama-guard-" + port.ToString(CultureInfo.InvariantCulture));

    public string TokenFile(int port) => AnchorFile(port) + ".token";

    public string PlistFile(int port) => Path.Combine(Environment.LaunchDaemonDirectory, Label(port) + ".plist");

    public override string SourceOfTruth(int port) => $"pfctl -a {AnchorName(port)} -s rules; pfctl -s info; {AnchorFile(port)}";

    private sealed class PfState : FirewallState
    {
        public string? File { get; init; }
        public string? Token { get; init; }
        public string? Plist { get; init; }
        public bool Loaded { get; init; }
        public bool Enabled { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var file = await Cat(AnchorFile(port), cancellationToken).ConfigureAwait(false);
        var token = (await Cat(TokenFile(port), cancellationToken).ConfigureAwait(false))?.Trim();
        var plist = await Cat(PlistFile(port), cancellationToken).ConfigureAwait(false);
        var info = await QueryAsync(cancellationToken, "pfctl", "-s", "info").ConfigureAwait(false);
        var rules = await QueryAsync(cancellationToken, "pfctl", "-a", AnchorName(port), "-s", "rules").ConfigureAwait(false);
        var enabled = (info.StandardOutput + info.StandardError).Contains("Status: Enabled", StringComparison.Ordinal);
        var loaded = rules.Succeeded && Lines(rules.StandardOutput).Any(l => l.StartsWith("block", StringComparison.Ordinal));
        var sources = file is null ? [] : ParseTable(file);
        return new PfState
        {
            Present = file is not null || loaded,
            Active = enabled && loaded && sources.Count > 0,
            AllowFrom = sources,
            File = file,
            Token = string.IsNullOrEmpty(token) ? null : token,
            Plist = plist,
            Loaded = loaded,
            Enabled = enabled,
            Warnings = file is not null && !enabled ? ["pf is disabled: the anchor is not in force."] : [],
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (PfState)current;
        var port = request.Port;
        var anchor = AnchorName(port);
        var file = AnchorFile(port);
        var rules = Rules(port, request.AllowFrom);
        var steps = new List<FirewallStep>();
        var fileChanged = s.File != rules;
        if (fileChanged)
        {
            steps.Add(WriteFileStep(file, rules, s.File));
            steps.Add(Step(Cmd("pfctl", "-n", "-a", anchor, "-f", file)));
        }

        if (fileChanged || !s.Loaded)
        {
            steps.Add(Step(Cmd("pfctl", "-a", anchor, "-f", file),
                s.Loaded && s.File is not null ? Cmd("pfctl", "-a", anchor, "-f", "-") with { StandardInput = s.File, Purpose = "restore " + anchor } : Cmd("pfctl", "-a", anchor, "-F", "all")));
        }

        if (s.Token is null)
        {
            steps.Add(Step(Cmd("pfctl", "-E")));
            steps.Add(Step(WriteFile(TokenFile(port), FirewallStep.TokenPlaceholder + "\n"), DeleteFile(TokenFile(port))) with { NeedsPreviousToken = true });
        }

        var plist = Plist(port, file);
        if (s.Plist != plist)
        {
            steps.Add(WriteFileStep(PlistFile(port), plist, s.Plist));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (PfState)current;
        var anchor = AnchorName(port);
        var steps = new List<FirewallStep>();
        if (s.Plist is not null)
        {
            steps.Add(Step(DeleteFile(PlistFile(port)), WriteFile(PlistFile(port), s.Plist)));
        }

        if (s.Loaded)
        {
            steps.Add(Step(Cmd("pfctl", "-a", anchor, "-F", "all"), s.File is not null ? Cmd("pfctl", "-a", anchor, "-f", AnchorFile(port)) : null));
        }

        if (s.Token is not null)
        {
            steps.Add(Step(Cmd("pfctl", "-X", s.Token)));
            steps.Add(Step(DeleteFile(TokenFile(port))));
        }

        if (s.File is not null)
        {
            steps.Add(Step(DeleteFile(AnchorFile(port)), WriteFile(AnchorFile(port), s.File)));
        }

        return steps;
    }

    public static string Rules(int port, IReadOnlyList<IPNetwork> allowFrom)
    {
        var p = port.ToString(CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append("# Managed by OllamaContinuity (Set-OllamaFirewallRule). Do not edit: run the cmdlet again.\n");
        sb.Append("table <ollama_allow_").Append(p).Append("> const { ").Append(string.Join(", ", allowFrom.Select(n => n.ToShort()))).Append(" }\n");
        sb.Append("pass in quick on lo0 proto tcp from any to any port ").Append(p).Append('\n');
        sb.Append("pass in quick proto tcp from <ollama_allow_").Append(p).Append("> to any port ").Append(p).Append('\n');
        sb.Append("block drop in quick proto tcp from any to any port ").Append(p).Append('\n');
        return sb.ToString();
    }

    public static string Plist(int port, string anchorFile)
    {
        var label = Label(port);
        return $"""
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
            <plist version="1.0">
            <dict>
              <key>Label</key>
              <string>{label}</string>
              <key>ProgramArguments</key>
              <array>
                <string>/sbin/pfctl</string>
                <string>-E</string>
                <string>-a</string>
                <string>{AnchorName(port)}</string>
                <string>-f</string>
                <string>{anchorFile}</string>
              </array>
              <key>RunAtLoad</key>
              <true/>
            </dict>
            </plist>

            """;
    }

    private static IReadOnlyList<IPNetwork> ParseTable(string file)
    {
        var line = Lines(file).FirstOrDefault(l => l.StartsWith("table <ollama_allow_", StringComparison.Ordinal));
        var open = line?.IndexOf('{', StringComparison.Ordinal) ?? -1;
        var close = line?.IndexOf('}', StringComparison.Ordinal) ?? -1;
        if (line is null || open < 0 || close < open)
        {
            return [];
        }

        return ParseAll(line[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    private async Task<string?> Cat(string path, CancellationToken cancellationToken)
    {
        var r = await QueryAsync(cancellationToken, "cat", path).ConfigureAwait(false);
        return r.Succeeded ? r.StandardOutput : null;
    }
}
