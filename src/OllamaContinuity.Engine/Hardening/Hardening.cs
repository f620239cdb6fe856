using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Hardening;

public enum HardeningPlatform
{
    Linux,
    Windows,
    MacOS,
}

/// <summary>What Set-OllamaHardening was asked to do. Null means "leave as it is".</summary>
public sealed class HardeningRequest
{
    /// <summary>The value for OLLAMA_HOST (for example 127.0.0.1:11434). The default value is null (unchanged).</summary>
    public string? BindAddress { get; init; }

    /// <summary>The values for OLLAMA_ORIGINS. A wildcard is refused unless <see cref="Force"/>. The default value is null (unchanged).</summary>
    public IReadOnlyList<string>? AllowedOrigins { get; init; }

    /// <summary>Sets OLLAMA_NO_WEBSERVER=1 (the checklist's item; Ollama itself does not read it). The default value is false.</summary>
    public bool DisableWebUI { get; init; }

    /// <summary>User= and Group= of the service (Linux). Never root. The default value is <c>ollama</c>.</summary>
    public string ServiceUser { get; init; } = "ollama";

    /// <summary>True when the caller named the service user (so other platforms warn that it does not apply).</summary>
    public bool ServiceUserGiven { get; init; }

    /// <summary>systemd MemoryMax= (for example 16G or 80%). The default value is null (unchanged).</summary>
    public string? MemoryMax { get; init; }

    /// <summary>systemd CPUQuota= (for example 400%). The default value is null (unchanged).</summary>
    public string? CPUQuota { get; init; }

    /// <summary>systemd TasksMax= (for example 512). The default value is null (unchanged).</summary>
    public string? TasksMax { get; init; }

    /// <summary>systemd sandboxing: NoNewPrivileges, ProtectSystem=strict with the models directory writable, ProtectHome, PrivateTmp. The default value is false.</summary>
    public bool Sandbox { get; init; }

    /// <summary>Apply under this root directory and run no service manager command. The default value is null (this machine, "/").</summary>
    public string? Root { get; init; }

    /// <summary>Restart Ollama after a change. The default value is false.</summary>
    public bool Restart { get; init; }

    /// <summary>The module's drop-in file name without .conf. The default value is <c>90-ollamacontinuity</c>.</summary>
    public string DropInName { get; init; } = DefaultDropInName;

    public bool Force { get; init; }

    public HardeningPlatform Platform { get; init; } = CurrentPlatform;

    public const string DefaultDropInName = "90-ollamacontinuity";

    public static HardeningPlatform CurrentPlatform =>
        OperatingSystem.IsWindows() ? HardeningPlatform.Windows : OperatingSystem.IsMacOS() ? HardeningPlatform.MacOS : HardeningPlatform.Linux;
}

/// <summary>A request that cannot be applied; <see cref="ErrorId"/> is the cmdlet's ErrorId.</summary>
public sealed class HardeningValidationException(string errorId, string parameter, string message, string recommendedAction) : ArgumentException(message, parameter)
{
    public string ErrorId { get; } = errorId;

    public string RecommendedAction { get; } = recommendedAction;
}

/// <summary>One setting: its effective value before and after, and whether this run changed it.</summary>
public sealed record HardeningSetting(string Setting, string? Before, string? After, bool Changed, string Target)
{
    public override string ToString() => $"{Setting}: {Before ?? "(unset)"} -> {After ?? "(unset)"}" + (Changed ? "" : " (unchanged)");
}

/// <summary>One change to the system. The cmdlet asks ShouldProcess(<see cref="Target"/>, <see cref="Action"/>) right before each.</summary>
public abstract record HardeningStep(string Target, string Action);

/// <summary>Writes a whole file atomically (mode 0644), first copying the file it replaces to <see cref="BackupPath"/>.</summary>
public sealed record WriteFileStep(string Path, string Content, string? BackupPath, string Description)
    : HardeningStep(Path, Description);

public sealed record RunCommandStep(CommandInvocation Command, string Description)
    : HardeningStep(Command.ToString(), Description);

public sealed record SetMachineEnvironmentStep(string Name, string Value)
    : HardeningStep("machine environment variable " + Name, $"Set to '{Value}'");

/// <summary>Restarts Ollama the way the platform needs (decided when it runs, through the runner).</summary>
public sealed record RestartStep(HardeningPlatform Platform, string ServiceName)
    : HardeningStep(ServiceName, "Restart Ollama");

public sealed class HardeningPlan
{
    public required IReadOnlyList<HardeningSetting> Settings { get; init; }

    public required IReadOnlyList<HardeningStep> Steps { get; init; }

    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>True when applying would change anything.</summary>
    public bool Changes => Settings.Any(s => s.Changed);
}

/// <summary>Machine-scope environment variables (Windows), behind a seam so plans are testable anywhere.</summary>
public interface IMachineEnvironment
{
    string? Get(string name);

    void Set(string name, string value);

    /// <summary>The current user's value (user scope wins over machine scope for the apps the user starts).</summary>
    string? GetUser(string name);
}

/// <summary>The real machine scope (HKLM\...\Environment on Windows).</summary>
public sealed class MachineEnvironment : IMachineEnvironment
{
    public static MachineEnvironment Instance { get; } = new();

    public string? Get(string name) => Environment.GetEnvironmentVariable(name, EnvironmentVariableTarget.Machine);

    public void Set(string name, string value) => Environment.SetEnvironmentVariable(name, value, EnvironmentVariableTarget.Machine);

    public string? GetUser(string name) => Environment.GetEnvironmentVariable(name, EnvironmentVariableTarget.User);
}

/// <summary>A dictionary standing in for the machine scope (tests and plans).</summary>
public sealed class InMemoryMachineEnvironment : IMachineEnvironment
{
    public Dictionary<string, string> Values { get; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, string> UserValues { get; } = new(StringComparer.OrdinalIgnoreCase);

    public string? Get(string name) => Values.TryGetValue(name, out var v) ? v : null;

    public string? GetUser(string name) => UserValues.TryGetValue(name, out var v) ? v : null;

    public void Set(string name, string value) => Values[name] = value;
}

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
            warnings.AddRange(parsed.Warnings);
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
            steps.Add(new WriteFileStep(dropIn, newText, backup, (oldText is null ? "Create systemd drop-in" : "Replace systemd drop-in (backup " + Path.GetFileName(backup) + ")") + ": " + what));
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
                steps.Add(new WriteFileStep(plist, content, oldPlist is null ? null : plist + ".bak", $"Write LaunchAgent so {name} survives a reboot"));
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

/// <summary>Performs one <see cref="HardeningStep"/>; native tools only through the runner.</summary>
public sealed class HardeningExecutor(ICommandRunner runner, IMachineEnvironment machine)
{
    /// <summary>Runs a step; returns messages for the verbose stream. Throws <see cref="InvalidOperationException"/> when a tool fails.</summary>
    public async Task<IReadOnlyList<string>> ExecuteAsync(HardeningStep step, CancellationToken cancellationToken = default)
    {
        switch (step)
        {
            case WriteFileStep w:
                WriteFile(w);
                return [w.BackupPath is null ? $"Wrote {w.Path}" : $"Wrote {w.Path}; the previous file is {w.BackupPath}"];
            case SetMachineEnvironmentStep e:
                machine.Set(e.Name, e.Value);
                return [$"Set machine environment variable {e.Name}"];
            case RunCommandStep c:
                await Run(c.Command, cancellationToken).ConfigureAwait(false);
                return [$"Ran {c.Command}"];
            case RestartStep s:
                return await RestartAsync(s, cancellationToken).ConfigureAwait(false);
            default:
                throw new NotSupportedException(step.GetType().Name);
        }
    }

    private async Task<IReadOnlyList<string>> RestartAsync(RestartStep s, CancellationToken ct)
    {
        var done = new List<string>();
        async Task R(CommandInvocation c)
        {
            await Run(c, ct).ConfigureAwait(false);
            done.Add($"Ran {c}");
        }

        switch (s.Platform)
        {
            case HardeningPlatform.Linux:
                await R(CommandInvocation.Of("systemctl", "restart", s.ServiceName)).ConfigureAwait(false);
                break;
            case HardeningPlatform.Windows:
                // The installer runs Ollama as a tray app; some sites install it as a service.
                var query = await runner.RunAsync(CommandInvocation.Of("sc.exe", "query", s.ServiceName), ct).ConfigureAwait(false);
                if (query.Succeeded)
                {
                    var stop = await runner.RunAsync(CommandInvocation.Of("net.exe", "stop", s.ServiceName), ct).ConfigureAwait(false);
                    done.Add($"net.exe stop {s.ServiceName}: exit {stop.ExitCode}");
                    await R(CommandInvocation.Of("net.exe", "start", s.ServiceName)).ConfigureAwait(false);
                }
                else
                {
                    await runner.RunAsync(CommandInvocation.Of("taskkill.exe", "/IM", "ollama app.exe", "/F"), ct).ConfigureAwait(false);
                    await runner.RunAsync(CommandInvocation.Of("taskkill.exe", "/IM", "ollama.exe", "/F"), ct).ConfigureAwait(false);
                    done.Add("Stopped the Ollama app (ollama app.exe, ollama.exe); start Ollama again from the Start menu as the signed-in user so it reads the new machine variables.");
                }

                break;
            case HardeningPlatform.MacOS:
                await runner.RunAsync(CommandInvocation.Of("osascript", "-e", "tell application \"Ollama\" to quit"), ct).ConfigureAwait(false);
                await R(CommandInvocation.Of("open", "-a", "Ollama")).ConfigureAwait(false);
                break;
        }

        return done;
    }

    private async Task Run(CommandInvocation c, CancellationToken ct)
    {
        var result = await runner.RunAsync(c, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"'{c}' failed with exit code {result.ExitCode}: {result.StandardError.Trim()}");
        }
    }

    internal static void WriteFile(WriteFileStep w)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(w.Path))!;
        Directory.CreateDirectory(dir);
        if (new FileInfo(w.Path).LinkTarget is { } target)
        {
            // Root writes here: never follow a link someone planted in place of the module's file.
            throw new InvalidOperationException($"{w.Path} is a symbolic link (to {target}); refusing to replace it. Remove the link and run again.");
        }

        if (w.BackupPath is not null && File.Exists(w.Path))
        {
            File.Delete(w.BackupPath); // a planted link at the backup path is removed, not followed
            File.Copy(w.Path, w.BackupPath);
        }

        var temp = Path.Combine(dir, "." + Path.GetFileName(w.Path) + "." + Guid.NewGuid().ToString("n")[..8] + ".tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Unit files and LaunchAgents are configuration read by the service manager: root-writable, world-readable.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        }

        try
        {
            using (var fs = new FileStream(temp, options))
            {
                fs.Write(Encoding.UTF8.GetBytes(w.Content));
                fs.Flush(flushToDisk: true);
            }

            File.Move(temp, w.Path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
