using System.Text;

namespace OllamaContinuity.Gateway;

/// <summary>The files and command lines of the gateway service, rendered deterministically (the same settings give the same bytes).</summary>
public static partial class GatewayServicePlanner
{
    /// <summary>The systemd unit: deterministic (no timestamp), so the same settings give the same bytes.</summary>
    internal static string RenderUnit(GatewayServiceRequest r, string tokensFile, bool homeReadOnly)
    {
        var dll = r.GatewayDirectory.TrimEnd('/') + "/" + GatewayControl.GatewayAssembly;
        var state = "%S/" + LinuxStateDirectory;
        // Specifiers are kept raw (%d: the credentials directory, %S: /var/lib); everything the caller gave is quoted.
        var exec = string.Join(' ', new[] { r.DotnetPath, dll }.Concat(GatewayArguments(r, "\u0001" + LinuxCredential, "\u0002gateway.json", r.LogPath)).Select(a =>
            a.StartsWith('\u0001') ? "%d/" + a[1..] : a.StartsWith('\u0002') ? state + "/" + a[1..] : ExecWord(a)));
        var lowPort = r.Port < 1024;
        var sb = new StringBuilder();
        sb.Append("# Managed by OllamaContinuity (Install-AiGateway): rewritten by the module, removed by Uninstall-AiGateway.\n");
        sb.Append("# Put your own settings in a drop-in (systemctl edit ").Append(LinuxUnitName).Append("). The backend settings and the\n");
        sb.Append("# cloud key are in ").Append(LinuxEnvironmentFile).Append(" (owner-only); systemd hands the client tokens to the service.\n");
        sb.Append("[Unit]\n");
        sb.Append("Description=OllamaContinuity AI failover gateway (cloud AI first, local Ollama on failure)\n");
        sb.Append("Wants=network-online.target\n");
        sb.Append("After=network-online.target ollama.service\n");
        sb.Append('\n');
        sb.Append("[Service]\n");
        // notify: systemctl start returns once the gateway listens (it sends READY=1), and fails when it cannot.
        sb.Append("Type=notify\n");
        sb.Append("NotifyAccess=main\n");
        sb.Append("ExecStart=").Append(exec).Append('\n');
        sb.Append("EnvironmentFile=").Append(Specifiers(LinuxEnvironmentFile)).Append('\n');
        sb.Append("Environment=HOME=").Append(state).Append(" XDG_STATE_HOME=").Append(state).Append(" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1\n");
        sb.Append("LoadCredential=").Append(LinuxCredential).Append(':').Append(Specifiers(tokensFile)).Append('\n');
        sb.Append("DynamicUser=yes\n");
        sb.Append("StateDirectory=").Append(LinuxStateDirectory).Append('\n');
        sb.Append("StateDirectoryMode=0700\n");
        sb.Append("UMask=0077\n");
        sb.Append("Restart=on-failure\n");
        sb.Append("RestartSec=3\n");
        sb.Append("NoNewPrivileges=yes\n");
        sb.Append("ProtectSystem=strict\n");
        sb.Append("ProtectHome=").Append(homeReadOnly ? "read-only" : "yes").Append('\n');
        sb.Append("PrivateTmp=yes\n");
        sb.Append("PrivateDevices=yes\n");
        sb.Append("ProtectKernelTunables=yes\n");
        sb.Append("ProtectKernelModules=yes\n");
        sb.Append("ProtectKernelLogs=yes\n");
        sb.Append("ProtectControlGroups=yes\n");
        sb.Append("ProtectClock=yes\n");
        sb.Append("ProtectHostname=yes\n");
        sb.Append("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n");
        sb.Append("RestrictNamespaces=yes\n");
        sb.Append("RestrictRealtime=yes\n");
        sb.Append("RestrictSUIDSGID=yes\n");
        sb.Append("LockPersonality=yes\n");
        sb.Append("SystemCallArchitectures=native\n");
        sb.Append("CapabilityBoundingSet=").Append(lowPort ? "CAP_NET_BIND_SERVICE" : "").Append('\n');
        sb.Append("AmbientCapabilities=").Append(lowPort ? "CAP_NET_BIND_SERVICE" : "").Append('\n');
        if (r.LogPath is { } log && Path.GetDirectoryName(log) is { Length: > 0 } logDir)
        {
            sb.Append("ReadWritePaths=-").Append(Specifiers(logDir)).Append('\n');
        }

        sb.Append('\n');
        sb.Append("[Install]\n");
        sb.Append("WantedBy=multi-user.target\n");
        return sb.ToString();
    }

    /// <summary>The header of the Windows settings file (the Linux one says 0600).</summary>
    internal const string WindowsEnvironmentHeader =
        "# Managed by OllamaContinuity (Install-AiGateway): the gateway's backend settings, read with --environment-file. Only SYSTEM, Administrators and LocalService may read it (the data folder's ACL): it holds the cloud key.\n";

    /// <summary>The largest settings file the gateway reads (<see cref="ParseEnvironmentFile"/>).</summary>
    public const int MaxEnvironmentFileBytes = 64 * 1024;

    /// <summary>The EnvironmentFile: one assignment a line, single-quoted (double-quoted with escapes when the value holds a quote).</summary>
    public static string RenderEnvironmentFile(IReadOnlyDictionary<string, string> environment, bool redact = false, string? header = null)
    {
        var sb = new StringBuilder(header ?? "# Managed by OllamaContinuity (Install-AiGateway): the gateway's backend settings. Owner-only (0600): it holds the cloud key.\n");
        foreach (var (name, value) in Ordered(environment))
        {
            var v = redact ? Display(name, value) : value;
            sb.Append(name).Append('=');
            if (!v.Contains('\''))
            {
                sb.Append('\'').Append(v).Append('\'');
            }
            else
            {
                sb.Append('"');
                foreach (var c in v)
                {
                    if (c is '"' or '\\' or '$' or '`')
                    {
                        sb.Append('\\');
                    }

                    sb.Append(c);
                }

                sb.Append('"');
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>
    /// Reads what <see cref="RenderEnvironmentFile"/> writes, exactly inverting it: <c>NAME='value'</c> (taken as is), or
    /// <c>NAME="value"</c> where a backslash escapes <c>" \ $ `</c>; lines starting with # and blank lines are skipped;
    /// CRLF is accepted. Anything else throws <see cref="FormatException"/> naming the line and, when read, the name: never
    /// the value (it may be the cloud key). A later line for the same name wins, as in systemd.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ParseEnvironmentFile(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n].EndsWith('\r') ? lines[n][..^1] : lines[n];
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var where = $"line {n + 1}";
            var eq = line.IndexOf('=');
            var name = eq > 0 ? line[..eq] : "";
            if (!IsVariableName(name))
            {
                throw new FormatException($"{where} is not a NAME='value' assignment.");
            }

            var quoted = line[(eq + 1)..];
            if (quoted.Length < 2 || quoted[0] is not ('\'' or '"') || quoted[^1] != quoted[0])
            {
                throw new FormatException($"{where}: the value of {name} is not enclosed in matching quotes.");
            }

            var inner = quoted[1..^1];
            if (quoted[0] == '\'')
            {
                if (inner.Contains('\''))
                {
                    throw new FormatException($"{where}: the single-quoted value of {name} holds a single quote.");
                }

                values[name] = inner;
                continue;
            }

            var sb = new StringBuilder(inner.Length);
            for (var i = 0; i < inner.Length; i++)
            {
                var c = inner[i];
                if (c == '\\')
                {
                    if (i + 1 >= inner.Length || inner[i + 1] is not ('"' or '\\' or '$' or '`'))
                    {
                        throw new FormatException($"{where}: the value of {name} holds a backslash that escapes nothing (only \\\" \\\\ \\$ \\` are escapes).");
                    }

                    sb.Append(inner[++i]);
                }
                else if (c is '"' or '$' or '`')
                {
                    throw new FormatException($"{where}: the double-quoted value of {name} holds an unescaped {c}.");
                }
                else
                {
                    sb.Append(c);
                }
            }

            values[name] = sb.ToString();
        }

        return values;
    }

    /// <summary>The launchd daemon: the gateway as <see cref="MacAccount"/>, restarted when it fails, with its settings.</summary>
    internal static string RenderPlist(GatewayServiceRequest r, string tokensFile, bool redact = false)
    {
        static string X(string s) => System.Security.SecurityElement.Escape(s)!;
        var sb = new StringBuilder();
        sb.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        sb.Append("<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n");
        sb.Append("<!-- Managed by OllamaContinuity (Install-AiGateway): rewritten by the module, removed by Uninstall-AiGateway. Owner-only: it holds the backend settings. -->\n");
        sb.Append("<plist version=\"1.0\">\n<dict>\n");
        sb.Append("  <key>Label</key>\n  <string>").Append(MacLabel).Append("</string>\n");
        sb.Append("  <key>ProgramArguments</key>\n  <array>\n");
        foreach (var a in new[] { r.DotnetPath, r.GatewayDirectory.TrimEnd('/') + "/" + GatewayControl.GatewayAssembly }.Concat(GatewayArguments(r, tokensFile, MacDataDirectory + "/gateway.json", r.LogPath)))
        {
            sb.Append("    <string>").Append(X(a)).Append("</string>\n");
        }

        sb.Append("  </array>\n");
        sb.Append("  <key>EnvironmentVariables</key>\n  <dict>\n");
        var env = new List<KeyValuePair<string, string>> { new("HOME", MacDataDirectory) };
        env.AddRange(Ordered(r.Environment));
        foreach (var (name, value) in env)
        {
            sb.Append("    <key>").Append(X(name)).Append("</key>\n    <string>").Append(X(redact ? Display(name, value) : value)).Append("</string>\n");
        }

        sb.Append("  </dict>\n");
        sb.Append("  <key>UserName</key>\n  <string>").Append(MacAccount).Append("</string>\n");
        sb.Append("  <key>GroupName</key>\n  <string>").Append(MacAccount).Append("</string>\n");
        sb.Append("  <key>WorkingDirectory</key>\n  <string>").Append(X(MacDataDirectory)).Append("</string>\n");
        sb.Append("  <key>StandardOutPath</key>\n  <string>").Append(X(MacDataDirectory + "/gateway.log")).Append("</string>\n");
        sb.Append("  <key>StandardErrorPath</key>\n  <string>").Append(X(MacDataDirectory + "/gateway.log")).Append("</string>\n");
        sb.Append("  <key>Umask</key>\n  <integer>63</integer>\n");
        sb.Append("  <key>RunAtLoad</key>\n  <true/>\n");
        sb.Append("  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n");
        sb.Append("  <key>ProcessType</key>\n  <string>Background</string>\n");
        sb.Append("</dict>\n</plist>\n");
        return sb.ToString();
    }

    /// <summary>A Windows command line (the service's binPath): each word quoted as CommandLineToArgvW reads it back.</summary>
    internal static string WindowsCommandLine(IEnumerable<string> words) => string.Join(' ', words.Select(w =>
    {
        if (w.Length > 0 && !w.Any(c => char.IsWhiteSpace(c) || c == '"'))
        {
            return w;
        }

        var sb = new StringBuilder("\"");
        var slashes = 0;
        foreach (var c in w)
        {
            if (c == '\\')
            {
                slashes++;
                continue;
            }

            sb.Append('\\', c == '"' ? slashes * 2 + 1 : slashes).Append(c);
            slashes = 0;
        }

        return sb.Append('\\', slashes * 2).Append('"').ToString();
    }));

    /// <summary>One word of ExecStart=: kept as is when plain, else double-quoted with C escapes; % and $ are always escaped.</summary>
    private static string ExecWord(string word)
    {
        var plain = word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,@+".Contains(c));
        if (plain)
        {
            return word;
        }

        var sb = new StringBuilder("\"");
        foreach (var c in word)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '%' => "%%",
                '$' => "$$",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }

    private static string Specifiers(string path) => path.Replace("%", "%%", StringComparison.Ordinal);
}
