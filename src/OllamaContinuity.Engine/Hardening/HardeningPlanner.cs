using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Hardening;

/// <summary>
/// Turns a <see cref="HardeningRequest"/> into settings (before/after/changed) and the ordered steps that apply them.
/// Planning reads only; <see cref="HardeningExecutor"/> performs one step at a time.
/// </summary>
public static partial class HardeningPlanner
{
    public const string ServiceName = "ollama.service";
    public const string DropInDirectory = "etc/systemd/system/ollama.service.d";
    public const string LinuxModelsDirectory = "/usr/share/ollama/.ollama/models";
    public const string LinuxServiceHome = "/usr/share/ollama";
    public const string MacAgentDirectory = "Library/LaunchAgents";
    public const string MacAgentPrefix = "com.ollamacontinuity.env.";

    internal const string HostVar = "OLLAMA_HOST";
    internal const string OriginsVar = "OLLAMA_ORIGINS";
    internal const string NoWebVar = "OLLAMA_NO_WEBSERVER";

    private static readonly string[] DirectiveOrder =
        ["User", "Group", "MemoryMax", "CPUQuota", "TasksMax", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths"];

    private static readonly string[] EnvironmentOrder = [HostVar, OriginsVar, NoWebVar];

    /// <summary>Checks every parameter before anything runs; throws <see cref="HardeningValidationException"/>.</summary>
    public static IReadOnlyList<string> Validate(HardeningRequest r)
    {
        var warnings = new List<string>();
        if (r.BindAddress is { } bind)
        {
            if (string.IsNullOrWhiteSpace(bind) || bind.Any(char.IsControl) || bind.Any(char.IsWhiteSpace))
            {
                throw new HardeningValidationException("InvalidBindAddress", "BindAddress", $"'{bind}' is not a valid OLLAMA_HOST value (host, host:port or scheme://host:port, no spaces).",
                    "Give an address such as 127.0.0.1:11434, 0.0.0.0:11434 or [::1]:11434.");
            }

            var parsed = OllamaHost.Parse(bind);
            if (parsed.Problems() is { Count: > 0 } problems)
            {
                throw new HardeningValidationException("InvalidBindAddress", "BindAddress",
                    $"'{bind}' is not a valid OLLAMA_HOST value: {string.Join("; ", problems)}. Ollama would not listen where you mean.",
                    "Give host:port, such as 127.0.0.1:11434, 192.168.1.10:11434 or [::1]:11434 (a scheme is optional: http://host:port).");
            }

            if (parsed.IsAllInterfaces && !r.Force)
            {
                throw new HardeningValidationException("BindAllInterfaces", "BindAddress",
                    $"OLLAMA_HOST '{bind}' makes Ollama listen on every interface ({parsed.ListenAddress}): its unauthenticated API is then open to every network this machine is on. Refused without -Force.",
                    "Bind to loopback (127.0.0.1:11434) or to one interface's address; if every interface is really meant, pass -Force and restrict the port with Set-OllamaFirewallRule.");
            }

            warnings.AddRange(parsed.Warnings.Where(w => !w.Contains("invalid port", StringComparison.Ordinal)));
            if (parsed.IsAllInterfaces)
            {
                warnings.Add($"OLLAMA_HOST '{bind}' (forced): Ollama listens on every interface ({parsed.ListenAddress}); restrict the port with Set-OllamaFirewallRule.");
            }
        }

        if (r.AllowedOrigins is { } origins)
        {
            foreach (var o in origins)
            {
                if (string.IsNullOrWhiteSpace(o) || o.Contains(',') || o.Any(char.IsControl) || o.Any(char.IsWhiteSpace))
                {
                    throw new HardeningValidationException("InvalidOrigin", "AllowedOrigins", $"'{o}' is not a valid origin (one origin per entry, no commas or spaces, e.g. https://app.example.com).",
                        "Pass each origin as its own array element, such as 'https://app.example.com','http://intranet:8080'.");
                }

                if (o.Trim() == "*" && !r.Force)
                {
                    throw new HardeningValidationException("WildcardOrigin", "AllowedOrigins",
                        "OLLAMA_ORIGINS '*' lets every web page a user opens call this Ollama server from the user's browser (cross-origin requests from any site, including DNS-rebinding attacks on a local server). Refused without -Force.",
                        "List the exact origins of the web apps that need Ollama, or pass -Force if you really mean every origin.");
                }

                if (o.Trim() == "*")
                {
                    warnings.Add("OLLAMA_ORIGINS '*' (forced): every web origin may call this server from a browser.");
                }
            }
        }

        if (r.ServiceUser is "root" or "0")
        {
            throw new HardeningValidationException("RootServiceUser", "ServiceUser",
                "Ollama must not run as root: it serves an unauthenticated API and parses downloaded model files; as root any flaw in it is a flaw in the whole machine.",
                "Use the unprivileged account the Ollama installer creates (ollama), or another non-root account that owns the models directory.");
        }

        if (string.IsNullOrWhiteSpace(r.ServiceUser) || !UserName().IsMatch(r.ServiceUser))
        {
            throw new HardeningValidationException("InvalidServiceUser", "ServiceUser", $"'{r.ServiceUser}' is not a valid user name.", "Give the name of the unprivileged service account, such as ollama.");
        }

        CheckLimit(r.MemoryMax, "MemoryMax", MemoryValue(), "a size such as 16G, 8192M, 80% or infinity");
        CheckLimit(r.CPUQuota, "CPUQuota", CpuValue(), "a percentage such as 400% (4 cores)");
        CheckLimit(r.TasksMax, "TasksMax", TasksValue(), "a number such as 512, a percentage, or infinity");
        if (!DropInNameRegex().IsMatch(r.DropInName))
        {
            throw new HardeningValidationException("InvalidDropInName", "DropInName", $"'{r.DropInName}' is not a valid drop-in name (letters, digits, '.', '-', '_'; without .conf).",
                "Give a plain file name such as 90-ollamacontinuity.");
        }

        if (r.Root is { } root && !Directory.Exists(root))
        {
            throw new HardeningValidationException("RootNotFound", "Root", $"The root directory '{root}' does not exist.", "Create the directory or give the path of a mounted image.");
        }

        if (r.Root is not null && r.Platform == HardeningPlatform.Windows)
        {
            throw new HardeningValidationException("RootNotSupported", "Root", "-Root applies to Linux and macOS files; Windows settings live in the registry of the running system.",
                "Run without -Root on the Windows machine itself.");
        }

        return warnings;
    }

    /// <summary>Plans the change: reads the current state (files, machine environment, <c>launchctl getenv</c>) and computes the steps.</summary>
    public static async Task<HardeningPlan> PlanAsync(HardeningRequest r, ICommandRunner runner, IMachineEnvironment machine, TimeProvider time, CancellationToken cancellationToken = default)
    {
        var warnings = Validate(r).ToList();
        return r.Platform switch
        {
            HardeningPlatform.Windows => PlanWindows(r, machine, warnings),
            HardeningPlatform.MacOS => await PlanMacAsync(r, runner, warnings, cancellationToken).ConfigureAwait(false),
            _ => PlanLinux(r, time, warnings),
        };
    }

    /// <summary>The environment variables a request sets (name, value), in a fixed order.</summary>
    internal static List<(string Name, string Value)> RequestedEnvironment(HardeningRequest r)
    {
        var list = new List<(string, string)>();
        if (r.BindAddress is { } b)
        {
            list.Add((HostVar, b.Trim()));
        }

        if (r.AllowedOrigins is { } o)
        {
            list.Add((OriginsVar, string.Join(',', o.Select(x => x.Trim()))));
        }

        if (r.DisableWebUI)
        {
            list.Add((NoWebVar, "1"));
        }

        return list;
    }

    private static HardeningPlan PlanLinux(HardeningRequest r, TimeProvider time, List<string> warnings)
    {
        var root = r.Root ?? "/";
        var dropIn = Path.Combine(root, DropInDirectory, r.DropInName + ".conf");
        if (r.Root is not null)
        {
            // Every path read or written under the root must stay inside it, whatever links the image holds.
            foreach (var path in SystemdService.UnitDirectories.Select(d => Path.Combine(root, d)).Append(dropIn).Append(Path.Combine(root, "etc/passwd")).Append(Path.Combine(root, "etc/group")))
            {
                RootedPath.Require(root, path);
            }
        }

        var before = SystemdService.Load(root, ServiceName);
        if (!before.Exists)
        {
            warnings.Add($"No {ServiceName} unit was found under {root}; the drop-in is written anyway and applies once Ollama's unit is installed.");
        }

        // Our own file's settings so far: later runs add to them, so settings from earlier runs stay.
        var oldText = File.Exists(dropIn) ? File.ReadAllText(dropIn) : null;
        var ownEnv = new Dictionary<string, SystemdAssignment>(StringComparer.Ordinal);
        var ownDirectives = new Dictionary<string, SystemdAssignment>(StringComparer.Ordinal);
        if (oldText is not null)
        {
            SystemdService.Apply(oldText, dropIn, ownEnv, ownDirectives);
        }

        var env = ownEnv.ToDictionary(kv => kv.Key, kv => kv.Value.Value, StringComparer.Ordinal);
        var directives = ownDirectives.ToDictionary(kv => kv.Key, kv => kv.Value.Value, StringComparer.Ordinal);
        var touched = new List<(string Setting, bool IsEnv)>();
        foreach (var (name, value) in RequestedEnvironment(r))
        {
            env[name] = value;
            touched.Add((name, true));
        }

        void Set(string key, string value)
        {
            directives[key] = value;
            touched.Add((key, false));
        }

        Set("User", r.ServiceUser);
        var group = PrimaryGroup(root, r.ServiceUser, warnings);
        Set("Group", group);
        if (r.MemoryMax is { } mem)
        {
            Set("MemoryMax", mem.Trim());
        }

        if (r.CPUQuota is { } cpu)
        {
            Set("CPUQuota", cpu.Trim());
        }

        if (r.TasksMax is { } tasks)
        {
            Set("TasksMax", tasks.Trim());
        }

        if (r.Sandbox)
        {
            var models = before.Env("OLLAMA_MODELS") is { Length: > 0 } m ? m : LinuxModelsDirectory;
            var home = ServiceHome(root, r.ServiceUser);
            Set("NoNewPrivileges", "yes");
            Set("ProtectSystem", "strict");
            Set("PrivateTmp", "yes");
            var underHome = IsUnder(models, "/home") || IsUnder(models, "/root") || IsUnder(models, "/run/user") || IsUnder(home, "/home");
            if (underHome)
            {
                warnings.Add($"ProtectHome is not set: the models directory '{models}' or the service home '{home}' is under a home directory and must stay writable.");
            }
            else
            {
                Set("ProtectHome", "yes");
            }

            // ProtectSystem=strict makes the whole file system read-only: the service home (keys, first-run folders)
            // and the models directory stay writable. '-' tolerates a models folder that does not exist yet.
            var paths = new List<string> { home };
            if (models.TrimEnd('/') != home.TrimEnd('/'))
            {
                paths.Add("-" + models);
            }

            Set("ReadWritePaths", string.Join(' ', paths.Distinct(StringComparer.Ordinal)));
        }

        var newText = RenderDropIn(env, directives);
        var after = SystemdService.Load(root, ServiceName, (dropIn, newText));
        var fileChanges = !string.Equals(oldText, newText, StringComparison.Ordinal);
        var settings = new List<HardeningSetting>();
        foreach (var (setting, isEnv) in touched)
        {
            var b = isEnv ? before.Env(setting) : before.Directive(setting);
            var a = isEnv ? after.Env(setting) : after.Directive(setting);
            var ownOld = isEnv ? (ownEnv.TryGetValue(setting, out var oe) ? oe.Value : null) : (ownDirectives.TryGetValue(setting, out var od) ? od.Value : null);
            var ownNew = isEnv ? env[setting] : directives[setting];
            var sourceAfter = isEnv ? after.Environment.GetValueOrDefault(setting)?.File : after.Directives.GetValueOrDefault(setting)?.File;
            if (sourceAfter is not null && sourceAfter != dropIn)
            {
                warnings.Add($"{setting} is overridden by {sourceAfter}, which systemd applies after {dropIn}: the effective value stays '{a}'.");
            }

            settings.Add(new HardeningSetting(setting, b, a, ownOld != ownNew, dropIn));
        }

        var steps = new List<HardeningStep>();
        if (fileChanges)
        {
            var backup = oldText is null ? null : dropIn + "." + time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + ".bak";
            var what = string.Join(", ", settings.Where(s => s.Changed).Select(s => $"{s.Setting}={s.After}"));
            steps.Add(new WriteFileStep(dropIn, newText, backup, (oldText is null ? "Create systemd drop-in" : "Replace systemd drop-in (backup " + Path.GetFileName(backup) + ")") + ": " + what) { Root = r.Root });
            if (r.Root is null)
            {
                steps.Add(new RunCommandStep(CommandInvocation.Of("systemctl", "daemon-reload"), "Reload systemd units"));
                if (r.Restart)
                {
                    steps.Add(new RestartStep(HardeningPlatform.Linux, ServiceName));
                }
                else
                {
                    warnings.Add("The new settings apply at the next restart of ollama.service (use -Restart, or: systemctl restart ollama).");
                }
            }
        }

        return new HardeningPlan { Settings = settings, Steps = steps, Warnings = warnings };
    }

    private static HardeningPlan PlanWindows(HardeningRequest r, IMachineEnvironment machine, List<string> warnings)
    {
        NotApplicable(r, warnings, "Windows");
        var settings = new List<HardeningSetting>();
        var steps = new List<HardeningStep>();
        foreach (var (name, value) in RequestedEnvironment(r))
        {
            var before = machine.Get(name);
            var changed = !string.Equals(before, value, StringComparison.Ordinal);
            if (machine.GetUser(name) is { } user && user != value)
            {
                warnings.Add($"{name} is also set for the current user ('{user}'); the user value wins over the machine value for the Ollama app this user starts. Remove it: [Environment]::SetEnvironmentVariable('{name}', $null, 'User')");
            }

            settings.Add(new HardeningSetting(name, before, value, changed, "Machine environment"));
            if (changed)
            {
                steps.Add(new SetMachineEnvironmentStep(name, value));
            }
        }

        if (steps.Count > 0 && r.Restart)
        {
            steps.Add(new RestartStep(HardeningPlatform.Windows, "Ollama"));
        }
        else if (steps.Count > 0)
        {
            warnings.Add("Ollama reads these variables when it starts: restart the Ollama service or app (use -Restart).");
        }

        return new HardeningPlan { Settings = settings, Steps = steps, Warnings = warnings };
    }

    private static async Task<HardeningPlan> PlanMacAsync(HardeningRequest r, ICommandRunner runner, List<string> warnings, CancellationToken ct)
    {
        NotApplicable(r, warnings, "macOS");
        var root = r.Root ?? "/";
        var settings = new List<HardeningSetting>();
        var steps = new List<HardeningStep>();
        var changedAny = false;
        foreach (var (name, value) in RequestedEnvironment(r))
        {
            var plist = Path.Combine(root, MacAgentDirectory, MacAgentPrefix + name + ".plist");
            if (r.Root is not null)
            {
                RootedPath.Require(root, plist);
            }

            var content = RenderLaunchAgent(name, value);
            var oldPlist = File.Exists(plist) ? File.ReadAllText(plist) : null;
            string? before = null;
            if (r.Root is null)
            {
                var got = await runner.RunAsync(CommandInvocation.Of("launchctl", "getenv", name), ct).ConfigureAwait(false);
                before = got.Succeeded && got.StandardOutput.Trim().Length > 0 ? got.StandardOutput.Trim() : null;
            }
            else if (oldPlist is not null)
            {
                before = ReadLaunchAgentValue(oldPlist);
            }

            var sessionChanged = r.Root is null && !string.Equals(before, value, StringComparison.Ordinal);
            var fileChanged = !string.Equals(oldPlist, content, StringComparison.Ordinal);
            settings.Add(new HardeningSetting(name, before, value, sessionChanged || fileChanged, r.Root is null ? "launchctl + " + plist : plist));
            if (sessionChanged)
            {
                steps.Add(new RunCommandStep(CommandInvocation.Of("launchctl", "setenv", name, value), $"Set {name} for apps started from now on"));
            }

            if (fileChanged)
            {
                steps.Add(new WriteFileStep(plist, content, oldPlist is null ? null : plist + ".bak", $"Write LaunchAgent so {name} survives a reboot") { Root = r.Root });
            }

            changedAny |= sessionChanged || fileChanged;
        }

        if (changedAny && r.Restart && r.Root is null)
        {
            steps.Add(new RestartStep(HardeningPlatform.MacOS, "Ollama"));
        }
        else if (changedAny && r.Root is null)
        {
            warnings.Add("Quit and start the Ollama app again to apply (use -Restart).");
        }

        return new HardeningPlan { Settings = settings, Steps = steps, Warnings = warnings };
    }

    private static void NotApplicable(HardeningRequest r, List<string> warnings, string os)
    {
        foreach (var (given, name) in new[] { (r.ServiceUserGiven, "-ServiceUser"), (r.MemoryMax is not null, "-MemoryMax"), (r.CPUQuota is not null, "-CPUQuota"), (r.TasksMax is not null, "-TasksMax"), (r.Sandbox, "-Sandbox") })
        {
            if (given)
            {
                warnings.Add($"{name} applies to the systemd service on Linux only; ignored on {os}.");
            }
        }
    }

    /// <summary>The drop-in text: deterministic (no timestamp), so the same settings give the same bytes.</summary>
    internal static string RenderDropIn(IReadOnlyDictionary<string, string> env, IReadOnlyDictionary<string, string> directives)
    {
        var sb = new StringBuilder();
        sb.Append("# Managed by OllamaContinuity (Set-OllamaHardening). This file is rewritten by the module;\n");
        sb.Append("# put your own settings in another drop-in. The file it replaced is kept as <name>.conf.<time>.bak.\n");
        sb.Append("[Service]\n");
        foreach (var name in EnvironmentOrder.Where(env.ContainsKey).Concat(env.Keys.Where(k => !EnvironmentOrder.Contains(k)).Order(StringComparer.Ordinal)))
        {
            sb.Append("Environment=").Append(SystemdService.QuoteEnvironment(name, env[name])).Append('\n');
        }

        foreach (var key in DirectiveOrder.Where(directives.ContainsKey).Concat(directives.Keys.Where(k => !DirectiveOrder.Contains(k)).Order(StringComparer.Ordinal)))
        {
            sb.Append(key).Append('=').Append(directives[key]).Append('\n');
        }

        return sb.ToString();
    }

    internal static string RenderLaunchAgent(string name, string value)
    {
        static string X(string s) => System.Security.SecurityElement.Escape(s)!;
        return $"""
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
            <!-- Managed by OllamaContinuity (Set-OllamaHardening): sets {X(name)} for the Ollama app at every login. -->
            <plist version="1.0">
            <dict>
              <key>Label</key>
              <string>{X(MacAgentPrefix + name)}</string>
              <key>ProgramArguments</key>
              <array>
                <string>/bin/launchctl</string>
                <string>setenv</string>
                <string>{X(name)}</string>
                <string>{X(value)}</string>
              </array>
              <key>RunAtLoad</key>
              <true/>
            </dict>
            </plist>

            """;
    }

    private static string? ReadLaunchAgentValue(string plist)
    {
        var strings = StringElement().Matches(plist).Select(m => System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)).ToArray();
        var i = Array.IndexOf(strings, "setenv");
        return i >= 0 && i + 2 < strings.Length ? strings[i + 2] : null;
    }

    /// <summary>
    /// The user's primary group name from the root's /etc/passwd and /etc/group (the installer's ollama user has the
    /// group ollama). Falls back to the user name, with a warning when the user does not exist there.
    /// </summary>
    internal static string PrimaryGroup(string root, string user, List<string> warnings)
    {
        var passwd = Path.Combine(root, "etc/passwd");
        if (!File.Exists(passwd))
        {
            return user;
        }

        var gid = File.ReadLines(passwd).Select(l => l.Split(':')).FirstOrDefault(f => f.Length >= 4 && f[0] == user)?[3];
        if (gid is null)
        {
            warnings.Add($"The user '{user}' does not exist in {passwd}: ollama.service will not start until it is created (the Ollama installer runs: useradd -r -s /bin/false -U -m -d /usr/share/ollama ollama).");
            return user;
        }

        var groupFile = Path.Combine(root, "etc/group");
        var name = File.Exists(groupFile)
            ? File.ReadLines(groupFile).Select(l => l.Split(':')).FirstOrDefault(f => f.Length >= 3 && f[2] == gid)?[0]
            : null;
        return name ?? user;
    }

    /// <summary>The service user's home from the root's /etc/passwd; the installer's /usr/share/ollama when absent.</summary>
    internal static string ServiceHome(string root, string user)
    {
        var passwd = Path.Combine(root, "etc/passwd");
        if (File.Exists(passwd))
        {
            foreach (var line in File.ReadLines(passwd))
            {
                var f = line.Split(':');
                if (f.Length >= 6 && f[0] == user && f[5].StartsWith('/'))
                {
                    return f[5];
                }
            }
        }

        return LinuxServiceHome;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="dir"/> or inside it (POSIX paths).</summary>
    internal static bool IsUnder(string path, string dir) =>
        dir.TrimEnd('/').Length == 0 || path.TrimEnd('/') == dir.TrimEnd('/') || path.StartsWith(dir.TrimEnd('/') + "/", StringComparison.Ordinal);

    private static void CheckLimit(string? value, string parameter, Regex pattern, string example)
    {
        if (value is not null && !pattern.IsMatch(value.Trim()))
        {
            throw new HardeningValidationException("InvalidResourceLimit", parameter, $"-{parameter} '{value}' is not a valid systemd value: expected {example}.", $"Give {example}.");
        }
    }

    [GeneratedRegex(@"^[a-z_][a-z0-9_-]{0,31}$")]
    private static partial Regex UserName();

    [GeneratedRegex(@"^([0-9]+(\.[0-9]+)?[KMGT]?|[0-9]{1,3}(\.[0-9]+)?%|infinity)$")]
    private static partial Regex MemoryValue();

    [GeneratedRegex(@"^[0-9]{1,5}%$")]
    private static partial Regex CpuValue();

    [GeneratedRegex(@"^([0-9]{1,7}|[0-9]{1,3}%|infinity)$")]
    private static partial Regex TasksValue();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    private static partial Regex DropInNameRegex();

    [GeneratedRegex(@"<string>(.*?)</string>")]
    private static partial Regex StringElement();
}
