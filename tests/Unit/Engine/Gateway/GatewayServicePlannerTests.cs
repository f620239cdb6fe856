using System.Diagnostics;
using System.Text.Json;
using OllamaContinuity.Gateway;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Gateway;

/// <summary>
/// Install-/Uninstall-AiGateway's engine. Linux: staged under a temporary root (real files and modes, systemd-analyze
/// verify when the tool is here, no systemctl). Windows and macOS: their exact plans through the runner seam, as the
/// firewall's Windows and pf paths are tested.
/// </summary>
public sealed class GatewayServicePlannerTests : IDisposable
{
    private const string Key = "sk-test-SECRET-0123456789abcdef";
    private readonly string _root = TestPaths.New("gw-service");
    private readonly RecordingCommandRunner _runner = new();
    private readonly InMemoryServiceEnvironment _registry = new();

    public GatewayServicePlannerTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Unit => Path.Combine(_root, "etc/systemd/system/ollamacontinuity-gateway.service");

    private string EnvFile => Path.Combine(_root, "etc/ollamacontinuity/gateway.env");

    private string Tokens => Path.Combine(_root, "etc/ollamacontinuity/gateway-tokens.json");

    private static Dictionary<string, string> Settings(string key = Key) => new()
    {
        ["OLLAMA_URL"] = "http://127.0.0.1:11434",
        ["CLOUD_API_KEY"] = key,
        ["CLOUD_API_URL"] = "https://api.openai.com/v1/chat/completions",
        ["CLOUD_MODEL"] = "gpt-4o-mini",
    };

    private GatewayServiceRequest Linux(int port = 11435, string key = Key) => new()
    {
        Platform = HardeningPlatform.Linux,
        Root = _root,
        GatewayDirectory = "/opt/OllamaContinuity/Gateway",
        DotnetPath = "/usr/bin/dotnet",
        Port = port,
        RatePerMinute = 120,
        Environment = Settings(key),
    };

    private static GatewayServiceRequest Windows(int port = 11435, string key = Key) => new()
    {
        Platform = HardeningPlatform.Windows,
        GatewayDirectory = @"C:\Program Files\PowerShell\Modules\OllamaContinuity\Gateway",
        DotnetPath = @"C:\Program Files\dotnet\dotnet.exe",
        Port = port,
        Environment = Settings(key),
    };

    private GatewayServiceRequest Mac(string? root = null) => new()
    {
        Platform = HardeningPlatform.MacOS,
        Root = root,
        GatewayDirectory = "/usr/local/share/powershell/Modules/OllamaContinuity/Gateway",
        DotnetPath = "/usr/local/share/dotnet/dotnet",
        Environment = Settings(),
    };

    private async Task<GatewayServicePlan> Apply(GatewayServicePlan plan)
    {
        var exec = new GatewayServiceExecutor(_runner, _registry);
        foreach (var step in plan.Steps)
        {
            await exec.ExecuteAsync(step);
        }

        return plan;
    }

    private Task<GatewayServicePlan> Install(GatewayServiceRequest r) => GatewayServicePlanner.PlanInstallAsync(r, _runner, _registry);

    private static string Mode(string path) => OperatingSystem.IsWindows() ? "" : "0" + Convert.ToString((int)File.GetUnixFileMode(path), 8);

    /// <summary>Everything a plan shows: -WhatIf targets and actions, warnings, the result's text.</summary>
    private static string Shown(GatewayServicePlan p)
    {
        var r = p.ToResult();
        return string.Join('\n', p.Steps.Select(s => s.Target + " " + s.Action).Concat(p.Warnings).Concat(p.NotRun.Select(c => c.ToString()))
            .Concat(p.Files.Select(f => f.DisplayContent)).Append(r.ToString()).Append(r.Files.ToString()).Append(r.Commands.ToString()).Append(r.NotRun.ToString()));
    }

    private const string ExpectedUnit =
        "# Managed by OllamaContinuity (Install-AiGateway): rewritten by the module, removed by Uninstall-AiGateway.\n" +
        "# Put your own settings in a drop-in (systemctl edit ollamacontinuity-gateway.service). The backend settings and the\n" +
        "# cloud key are in /etc/ollamacontinuity/gateway.env (owner-only); systemd hands the client tokens to the service.\n" +
        "[Unit]\n" +
        "Description=OllamaContinuity AI failover gateway (cloud AI first, local Ollama on failure)\n" +
        "Wants=network-online.target\n" +
        "After=network-online.target ollama.service\n" +
        "\n" +
        "[Service]\n" +
        "Type=notify\n" +
        "NotifyAccess=main\n" +
        "ExecStart=/usr/bin/dotnet /opt/OllamaContinuity/Gateway/OllamaContinuity.Gateway.dll --bind 127.0.0.1 --port 11435 --tokens-file %d/gateway-tokens --state-file %S/ollamacontinuity-gateway/gateway.json --rate-per-minute 120\n" +
        "EnvironmentFile=/etc/ollamacontinuity/gateway.env\n" +
        "Environment=HOME=%S/ollamacontinuity-gateway XDG_STATE_HOME=%S/ollamacontinuity-gateway DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1\n" +
        "LoadCredential=gateway-tokens:/etc/ollamacontinuity/gateway-tokens.json\n" +
        "DynamicUser=yes\n" +
        "StateDirectory=ollamacontinuity-gateway\n" +
        "StateDirectoryMode=0700\n" +
        "UMask=0077\n" +
        "Restart=on-failure\n" +
        "RestartSec=3\n" +
        "NoNewPrivileges=yes\n" +
        "ProtectSystem=strict\n" +
        "ProtectHome=yes\n" +
        "PrivateTmp=yes\n" +
        "PrivateDevices=yes\n" +
        "ProtectKernelTunables=yes\n" +
        "ProtectKernelModules=yes\n" +
        "ProtectKernelLogs=yes\n" +
        "ProtectControlGroups=yes\n" +
        "ProtectClock=yes\n" +
        "ProtectHostname=yes\n" +
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n" +
        "RestrictNamespaces=yes\n" +
        "RestrictRealtime=yes\n" +
        "RestrictSUIDSGID=yes\n" +
        "LockPersonality=yes\n" +
        "SystemCallArchitectures=native\n" +
        "CapabilityBoundingSet=\n" +
        "AmbientCapabilities=\n" +
        "\n" +
        "[Install]\n" +
        "WantedBy=multi-user.target\n";

    [SkippableFact]
    public async Task Linux_staged_install_writes_the_sandboxed_unit_the_owner_only_settings_and_a_token_and_runs_no_command()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root stages Linux files with POSIX modes");
        var plan = await Apply(await Install(Linux()));

        Assert.Equal("Installed", plan.Status);
        Assert.Equal(ExpectedUnit, File.ReadAllText(Unit));
        Assert.Equal(
            "# Managed by OllamaContinuity (Install-AiGateway): the gateway's backend settings. Owner-only (0600): it holds the cloud key.\n" +
            "CLOUD_API_URL='https://api.openai.com/v1/chat/completions'\n" +
            "CLOUD_MODEL='gpt-4o-mini'\n" +
            $"CLOUD_API_KEY='{Key}'\n" +
            "OLLAMA_URL='http://127.0.0.1:11434'\n", File.ReadAllText(EnvFile));
        Assert.Equal("0644", Mode(Unit));
        Assert.Equal("0600", Mode(EnvFile));
        Assert.Equal("0600", Mode(Tokens));
        var token = JsonDocument.Parse(File.ReadAllText(Tokens)).RootElement.GetProperty("tokens")[0].GetProperty("token").GetString()!;
        Assert.StartsWith("oc_", token);
        Assert.True(token.Length >= 40);

        // Only files were written; the service manager's commands are listed for the target, never run here.
        Assert.Empty(_runner.Commands);
        Assert.All(plan.Steps, s => Assert.IsType<WriteFileStep>(s));
        Assert.Equal(["systemctl daemon-reload", "systemctl enable --now ollamacontinuity-gateway.service"], plan.NotRun.Select(c => c.ToString()));
        Assert.Equal([$"{Tokens} (0600)", $"{EnvFile} (0600)", $"{Unit} (0644)"], plan.ToResult().Files);

        // systemd reads what was written: the unit's variables and the settings file, quotes and all.
        var read = SystemdService.Load(_root, GatewayServicePlanner.LinuxUnitName);
        Assert.Equal(Key, read.Env("CLOUD_API_KEY"));
        Assert.Equal("yes", read.Directive("DynamicUser"));
        Assert.Equal("strict", read.Directive("ProtectSystem"));
    }

    [SkippableFact]
    public async Task Linux_staged_unit_passes_systemd_analyze_verify()
    {
        Skip.If(OperatingSystem.IsWindows(), "systemd is Linux only");
        var analyze = new[] { "/usr/bin/systemd-analyze", "/bin/systemd-analyze" }.FirstOrDefault(File.Exists);
        Skip.If(analyze is null, "systemd-analyze is not installed here: the unit's structure is checked by the other tests only");
        // verify checks that ExecStart's program exists: the real dotnet, and a real gateway folder.
        var dotnet = new[] { "/usr/bin/dotnet", "/usr/share/dotnet/dotnet", "/usr/lib/dotnet/dotnet" }.FirstOrDefault(File.Exists);
        Skip.If(dotnet is null, "no dotnet host at a system path for ExecStart");
        var gateway = Path.Combine(_root, "opt/Gateway");
        Directory.CreateDirectory(gateway);
        await Apply(await Install(Linux(port: 443) with
        {
            DotnetPath = dotnet,
            GatewayDirectory = gateway,
            Models = ["my model 100%", "quote\"d $HOME"],
            MaxBodyBytes = 1_048_576,
            MaxConcurrentRequests = 16,
            LogPath = "/var/log/ollamacontinuity/requests.jsonl",
        }));

        var psi = new ProcessStartInfo(analyze!) { RedirectStandardError = true, RedirectStandardOutput = true, Environment = { ["SYSTEMD_LOG_COLOR"] = "0" } };
        psi.ArgumentList.Add("verify");
        psi.ArgumentList.Add(Unit);
        using var p = Process.Start(psi)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, stderr + stdout);
        // systemd-analyze reports unknown keys, bad values and specifiers on stderr with exit code 0: none allowed.
        Assert.Equal("", (stderr + stdout).Trim());
        var text = File.ReadAllText(Unit);
        Assert.Contains("--model \"my model 100%%\" --model \"quote\\\"d $$HOME\"", text);
        Assert.Contains("CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", text);
        Assert.Contains("ReadWritePaths=-/var/log/ollamacontinuity\n", text);
    }

    [SkippableFact]
    public async Task Linux_installing_the_same_settings_twice_changes_nothing_and_a_changed_setting_rewrites_and_restarts()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root stages Linux files");
        await Apply(await Install(Linux()));
        var tokens = File.ReadAllText(Tokens);

        var again = await Install(Linux());
        Assert.Equal("Unchanged", again.Status);
        Assert.Empty(again.Steps);
        Assert.Equal([$"{Tokens} (0600)", $"{EnvFile} (0600)", $"{Unit} (0644)"], again.ToResult().Files); // the whole installation, even unchanged
        Assert.Empty(again.NotRun);

        // A new key: only the settings file changes; the unit stays, so no daemon-reload, just a restart.
        var newKey = await Apply(await Install(Linux(key: "sk-test-ROTATED-9876543210")));
        Assert.Equal("Updated", newKey.Status);
        Assert.Equal([EnvFile], newKey.Steps.Select(s => s.Target));
        Assert.Equal(["systemctl restart ollamacontinuity-gateway.service"], newKey.NotRun.Select(c => c.ToString()));
        Assert.Contains("sk-test-ROTATED-9876543210", File.ReadAllText(EnvFile));

        // A new port: the unit changes: reload and restart. The tokens file is never replaced.
        var newPort = await Apply(await Install(Linux(port: 11500, key: "sk-test-ROTATED-9876543210")));
        Assert.Equal([Unit], newPort.Steps.Select(s => s.Target));
        Assert.Equal(["systemctl daemon-reload", "systemctl restart ollamacontinuity-gateway.service"], newPort.NotRun.Select(c => c.ToString()));
        Assert.Contains("--port 11500", File.ReadAllText(Unit));
        Assert.Equal(tokens, File.ReadAllText(Tokens));

        // A settings file whose mode was loosened by hand is put back to 0600.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(EnvFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        }

        var mode = await Apply(await Install(Linux(port: 11500, key: "sk-test-ROTATED-9876543210")));
        Assert.Equal([EnvFile], mode.Steps.Select(s => s.Target));
        Assert.StartsWith("Set the mode of gateway.env (mode 0600)", mode.Steps[0].Action);
        Assert.Equal("0600", Mode(EnvFile));
    }

    [SkippableFact]
    public async Task Linux_plan_for_this_machine_is_exact_files_then_reload_and_enable_now()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the plan for this machine reads this machine's /etc");
        Skip.If(File.Exists(GatewayServicePlanner.LinuxUnitPath) || File.Exists(GatewayServicePlanner.LinuxTokensFile), "a gateway service is installed on this machine");
        var gateway = Path.Combine(_root, "Gateway");
        Directory.CreateDirectory(gateway);
        File.WriteAllText(Path.Combine(gateway, GatewayControl.GatewayAssembly), "");
        // Planned only: nothing is executed, so nothing of this machine changes.
        var plan = await Install(Linux() with { Root = null, GatewayDirectory = gateway });

        Assert.Equal(
        [
            "/etc/ollamacontinuity/gateway-tokens.json",
            "/etc/ollamacontinuity/gateway.env",
            "/etc/systemd/system/ollamacontinuity-gateway.service",
            "systemctl daemon-reload",
            "systemctl enable --now ollamacontinuity-gateway.service",
        ], plan.Steps.Select(s => s.Target));
        Assert.Equal([0600, 0600, 0644], plan.Steps.OfType<WriteFileStep>().Select(w => Convert.ToInt32(Convert.ToString((int)w.Mode, 8))));
        Assert.Empty(plan.NotRun);
        Assert.Empty(_runner.Commands); // a fresh install has no state to query
        Assert.DoesNotContain(Key, Shown(plan));
    }

    [Theory]
    [InlineData(false, true, true, true, true, "systemctl daemon-reload|systemctl enable --now ollamacontinuity-gateway.service")]
    [InlineData(true, false, false, true, true, "")]
    [InlineData(true, false, false, true, false, "systemctl start ollamacontinuity-gateway.service")]
    [InlineData(true, false, false, false, true, "systemctl enable ollamacontinuity-gateway.service")]
    [InlineData(true, false, true, true, true, "systemctl restart ollamacontinuity-gateway.service")]
    [InlineData(true, true, true, true, false, "systemctl daemon-reload|systemctl restart ollamacontinuity-gateway.service")]
    [InlineData(true, true, true, false, false, "systemctl daemon-reload|systemctl enable ollamacontinuity-gateway.service|systemctl restart ollamacontinuity-gateway.service")]
    public void Linux_commands_on_a_running_system_follow_what_changed_and_the_unit_state(bool existed, bool unitChanged, bool changed, bool enabled, bool active, string expected)
    {
        Assert.Equal(expected, string.Join('|', GatewayServicePlanner.LinuxCommands(existed, unitChanged, changed, enabled, active).Select(c => c.Command.ToString())));
    }

    [SkippableFact]
    public async Task Linux_uninstall_stops_disables_removes_the_unit_and_settings_keeps_the_tokens()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root stages Linux files");
        await Apply(await Install(Linux()));

        var plan = await Apply(await GatewayServicePlanner.PlanUninstallAsync(HardeningPlatform.Linux, _root, _runner));
        Assert.Equal("Removed", plan.Status);
        Assert.Equal([Unit, EnvFile], plan.Steps.Select(s => s.Target));
        Assert.Equal(["systemctl disable --now ollamacontinuity-gateway.service", "systemctl daemon-reload"], plan.NotRun.Select(c => c.ToString()));
        Assert.False(File.Exists(Unit));
        Assert.False(File.Exists(EnvFile));
        Assert.True(File.Exists(Tokens));
        Assert.Empty(_runner.Commands);

        var again = await GatewayServicePlanner.PlanUninstallAsync(HardeningPlatform.Linux, _root, _runner);
        Assert.Equal("NotInstalled", again.Status);
        Assert.Empty(again.Steps);
        Assert.Empty(again.NotRun);
    }

    [SkippableFact]
    public async Task Linux_root_whose_unit_folder_links_to_the_host_is_refused_before_anything_is_written()
    {
        Skip.If(OperatingSystem.IsWindows(), "POSIX symbolic links");
        var host = Path.Combine(_root, "host");
        Directory.CreateDirectory(host);
        var image = Path.Combine(_root, "image");
        Directory.CreateDirectory(Path.Combine(image, "etc/systemd"));
        Directory.CreateSymbolicLink(Path.Combine(image, "etc/systemd/system"), host);

        var e = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Root = image }));
        Assert.Equal("PathOutsideRoot", e.ErrorId);
        Assert.Empty(Directory.EnumerateFileSystemEntries(host));
    }

    private const string WindowsEnv = @"C:\ProgramData\OllamaContinuity\Gateway\gateway.env";

    private const string WindowsEnvContent =
        "# Managed by OllamaContinuity (Install-AiGateway): the gateway's backend settings, read with --environment-file. Only SYSTEM, Administrators and LocalService may read it (the data folder's ACL): it holds the cloud key.\n" +
        "CLOUD_API_URL='https://api.openai.com/v1/chat/completions'\n" +
        "CLOUD_MODEL='gpt-4o-mini'\n" +
        "CLOUD_API_KEY='" + Key + "'\n" +
        "OLLAMA_URL='http://127.0.0.1:11434'\n";

    [Fact]
    public async Task Windows_fresh_plan_is_exact_and_the_key_goes_to_gateway_env_in_the_data_folder_never_the_registry()
    {
        _runner.Answer("sc.exe qc OllamaContinuityGateway", 1060, "[SC] OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.");
        var plan = await Install(Windows());

        const string BinPath = "\"C:\\Program Files\\dotnet\\dotnet.exe\" \"C:\\Program Files\\PowerShell\\Modules\\OllamaContinuity\\Gateway\\OllamaContinuity.Gateway.dll\" --bind 127.0.0.1 --port 11435 --tokens-file C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway-tokens.json --state-file C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway.json --log-path C:\\ProgramData\\OllamaContinuity\\Gateway\\requests.jsonl --console-log C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway.log --environment-file C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway.env";
        Assert.Equal("Installed", plan.Status);
        Assert.Equal(
        [
            "New-Item -ItemType Directory -Path C:\\ProgramData\\OllamaContinuity\\Gateway -Force",
            "icacls.exe C:\\ProgramData\\OllamaContinuity\\Gateway /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F *S-1-5-19:(OI)(CI)M",
            "write C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway-tokens.json",
            "write C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway.env",
            $"sc.exe create OllamaContinuityGateway binPath= {BinPath} start= auto obj= NT AUTHORITY\\LocalService DisplayName= OllamaContinuity AI failover gateway",
            "sc.exe description OllamaContinuityGateway OllamaContinuity AI failover gateway: OpenAI, Anthropic and Ollama APIs for applications, cloud AI first and local Ollama on failure",
            "sc.exe failure OllamaContinuityGateway reset= 86400 actions= restart/5000/restart/5000/restart/60000",
            "Start-Service -Name OllamaContinuityGateway",
        ], plan.Steps.Select(Line));
        var env = plan.Steps.OfType<WriteFileStep>().Single(w => w.Path == WindowsEnv);
        Assert.Equal(WindowsEnvContent, env.Content);
        Assert.Equal(
            "Create gateway.env (ACL of the data folder: SYSTEM, Administrators, LocalService): Write the gateway's backend settings (read with --environment-file)\n" +
            WindowsEnvContent.Replace(Key, "(redacted)", StringComparison.Ordinal).TrimEnd('\n'), env.Action);
        Assert.Equal(GatewayServicePlanner.ParseEnvironmentFile(env.Content), Settings());
        Assert.DoesNotContain(plan.Steps, s => s is RemoveServiceEnvironmentStep);
        Assert.DoesNotContain(Key, Shown(plan));
        Assert.DoesNotContain(plan.Warnings, w => w.Contains("registry", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(plan.Files, f => f.Path == WindowsEnv && f.Mode == "ACL" && !f.DisplayContent.Contains(Key, StringComparison.Ordinal));
        Assert.Empty(_registry.Values);
    }

    private static string ScQc(string binPath, string start = "2   AUTO_START") =>
        "[SC] QueryServiceConfig SUCCESS\r\n\r\nSERVICE_NAME: OllamaContinuityGateway\r\n        TYPE               : 10  WIN32_OWN_PROCESS\r\n" +
        $"        START_TYPE         : {start}\r\n        ERROR_CONTROL      : 1   NORMAL\r\n        BINARY_PATH_NAME   : {binPath}\r\n" +
        "        LOAD_ORDER_GROUP   :\r\n        TAG                : 0\r\n        DISPLAY_NAME       : OllamaContinuity AI failover gateway\r\n" +
        "        DEPENDENCIES       :\r\n        SERVICE_START_NAME : NT AUTHORITY\\LocalService\r\n";

    [Fact]
    public async Task Windows_installed_service_with_the_same_settings_is_unchanged_and_a_change_reconfigures_and_restarts()
    {
        var fresh = await GatewayServicePlanner.PlanInstallAsync(Windows(), new RecordingCommandRunner().Answer("sc.exe qc", 1060), _registry);
        var binPath = ((RunCommandStep)fresh.Steps.Single(s => s is RunCommandStep c && c.Command.Arguments[0] == "create")).Command.Arguments[3];
        _registry.Files[WindowsEnv] = fresh.Steps.OfType<WriteFileStep>().Single(w => w.Path == WindowsEnv).Content;
        _registry.Files[@"C:\ProgramData\OllamaContinuity\Gateway\gateway-tokens.json"] = "{}";
        _runner.Answer("sc.exe qc OllamaContinuityGateway", 0, ScQc(binPath));

        var same = await Install(Windows());
        Assert.Equal("Unchanged", same.Status);
        Assert.Empty(same.Steps);

        var port = await Install(Windows(port: 11600));
        Assert.Equal("Updated", port.Status);
        Assert.Equal(
        [
            $"sc.exe config OllamaContinuityGateway binPath= {binPath.Replace("--port 11435", "--port 11600")} start= auto obj= NT AUTHORITY\\LocalService",
            "Restart-Service -Name OllamaContinuityGateway -Force",
        ], port.Steps.Select(Line));

        var key = await Install(Windows(key: "sk-test-ROTATED-9876543210"));
        Assert.Equal(["write " + WindowsEnv, "Restart-Service -Name OllamaContinuityGateway -Force"], key.Steps.Select(Line));
        var rewritten = key.Steps.OfType<WriteFileStep>().Single();
        Assert.StartsWith("Replace gateway.env ", rewritten.Action);
        Assert.Equal("sk-test-ROTATED-9876543210", GatewayServicePlanner.ParseEnvironmentFile(rewritten.Content)["CLOUD_API_KEY"]);
        Assert.DoesNotContain("sk-test-ROTATED-9876543210", Shown(key));
    }

    [Fact]
    public async Task Windows_settings_an_earlier_install_left_in_the_registry_environment_are_removed_and_nothing_else()
    {
        var fresh = await GatewayServicePlanner.PlanInstallAsync(Windows(), new RecordingCommandRunner().Answer("sc.exe qc", 1060), _registry);
        var binPath = ((RunCommandStep)fresh.Steps.Single(s => s is RunCommandStep c && c.Command.Arguments[0] == "create")).Command.Arguments[3];
        // The earlier version: the same service, its settings (with the key) in the registry value, no gateway.env.
        _registry.Values[GatewayServicePlanner.WindowsServiceName] =
            ["CLOUD_API_URL=https://api.openai.com/v1/chat/completions", "CLOUD_API_KEY=" + Key, "HTTPS_PROXY=http://proxy:3128", "OLLAMA_URL=http://127.0.0.1:11434"];
        _registry.Files[@"C:\ProgramData\OllamaContinuity\Gateway\gateway-tokens.json"] = "{}";
        _runner.Answer("sc.exe qc OllamaContinuityGateway", 0, ScQc(binPath.Replace(" --environment-file C:\\ProgramData\\OllamaContinuity\\Gateway\\gateway.env", "", StringComparison.Ordinal)));

        var plan = await Install(Windows());
        Assert.Equal("Updated", plan.Status);
        Assert.Equal(
        [
            "write " + WindowsEnv,
            $"sc.exe config OllamaContinuityGateway binPath= {binPath} start= auto obj= NT AUTHORITY\\LocalService",
            "registry-remove OllamaContinuityGateway CLOUD_API_URL|CLOUD_API_KEY|OLLAMA_URL",
            "Restart-Service -Name OllamaContinuityGateway -Force",
        ], plan.Steps.Select(Line));
        var remove = plan.Steps.OfType<RemoveServiceEnvironmentStep>().Single();
        Assert.StartsWith("Remove the settings from the service's registry environment", remove.Action);
        Assert.DoesNotContain(Key, Shown(plan));

        await new GatewayServiceExecutor(_runner, _registry).ExecuteAsync(remove);
        Assert.Equal(["HTTPS_PROXY=http://proxy:3128"], _registry.Values[GatewayServicePlanner.WindowsServiceName]);
        await new GatewayServiceExecutor(_runner, _registry).ExecuteAsync(new RemoveServiceEnvironmentStep(GatewayServicePlanner.WindowsServiceName, ["HTTPS_PROXY"], "all"));
        Assert.False(_registry.Values.ContainsKey(GatewayServicePlanner.WindowsServiceName));

        _registry.Files[WindowsEnv] = plan.Steps.OfType<WriteFileStep>().Single().Content;
        var upgraded = new RecordingCommandRunner().Answer("sc.exe qc OllamaContinuityGateway", 0, ScQc(binPath));
        Assert.Equal("Unchanged", (await GatewayServicePlanner.PlanInstallAsync(Windows(), upgraded, _registry)).Status);
    }

    [Fact]
    public async Task Windows_uninstall_stops_and_deletes_the_service_removes_gateway_env_keeps_the_tokens_and_plans_nothing_when_there_is_none()
    {
        _runner.Answer("sc.exe qc OllamaContinuityGateway", 0, ScQc("x"));
        _registry.Files[WindowsEnv] = WindowsEnvContent;
        _registry.Files[@"C:\ProgramData\OllamaContinuity\Gateway\gateway-tokens.json"] = "{}";
        var plan = await GatewayServicePlanner.PlanUninstallAsync(HardeningPlatform.Windows, null, _runner, default, _registry);
        Assert.Equal("Removed", plan.Status);
        Assert.Equal(["Stop-Service -Name OllamaContinuityGateway -Force", "sc.exe delete OllamaContinuityGateway", "remove " + WindowsEnv], plan.Steps.Select(Line));
        Assert.Contains(plan.Warnings, w => w.StartsWith("Kept: the client tokens", StringComparison.Ordinal));
        Assert.DoesNotContain(Key, Shown(plan));

        var none = new RecordingCommandRunner().Answer("sc.exe qc", 1060);
        var nothing = await GatewayServicePlanner.PlanUninstallAsync(HardeningPlatform.Windows, null, none, default, new InMemoryServiceEnvironment());
        Assert.Equal("NotInstalled", nothing.Status);
        Assert.Empty(nothing.Steps);
    }

    [Fact]
    public async Task MacOS_fresh_plan_is_exact_a_root_only_daemon_running_as_nobody_bootstrapped_into_the_system_domain()
    {
        _runner.Answer("launchctl print system/com.ollamacontinuity.gateway", 113, "", "Could not find service");
        var plan = await Install(Mac());

        Assert.Equal(
        [
            "write /Library/Application Support/OllamaContinuity/Gateway/gateway-tokens.json",
            "write /Library/LaunchDaemons/com.ollamacontinuity.gateway.plist",
            "/bin/mkdir -p /Library/Application Support/OllamaContinuity/Gateway",
            "/usr/sbin/chown -R nobody:nobody /Library/Application Support/OllamaContinuity/Gateway",
            "/bin/chmod 0700 /Library/Application Support/OllamaContinuity/Gateway",
            "launchctl enable system/com.ollamacontinuity.gateway",
            "launchctl bootstrap system /Library/LaunchDaemons/com.ollamacontinuity.gateway.plist",
        ], plan.Steps.Select(Line));
        var plist = plan.Steps.OfType<WriteFileStep>().Single(w => w.Path.EndsWith(".plist", StringComparison.Ordinal));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, plist.Mode);
        Assert.Contains("    <key>CLOUD_API_KEY</key>\n    <string>" + Key + "</string>\n", plist.Content);
        Assert.Contains("  <key>UserName</key>\n  <string>nobody</string>\n", plist.Content);
        Assert.Contains("    <string>--tokens-file</string>\n    <string>/Library/Application Support/OllamaContinuity/Gateway/gateway-tokens.json</string>\n", plist.Content);
        Assert.Contains("<key>CLOUD_API_KEY</key>\n    <string>(redacted)</string>", plist.Action);
        Assert.DoesNotContain(Key, Shown(plan));
        var doc = new System.Xml.XmlDocument { XmlResolver = null };
        doc.LoadXml(plist.Content.Replace("<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">", "", StringComparison.Ordinal));
        Assert.Equal("com.ollamacontinuity.gateway", doc.SelectSingleNode("/plist/dict/key[.='Label']/following-sibling::string[1]")!.InnerText);
    }

    [Fact]
    public async Task MacOS_loaded_daemon_with_new_settings_is_booted_out_and_bootstrapped_again()
    {
        var root = Path.Combine(_root, "mac");
        Directory.CreateDirectory(root);
        await Apply(await Install(Mac(root)));
        Assert.Equal("Unchanged", (await Install(Mac(root))).Status);
        var changed = await Install(Mac(root) with { Port = 11600 });
        Assert.Equal(["launchctl enable system/com.ollamacontinuity.gateway", "launchctl bootstrap system /Library/LaunchDaemons/com.ollamacontinuity.gateway.plist"], changed.NotRun.Select(c => c.ToString()));
        var uninstall = await Apply(await GatewayServicePlanner.PlanUninstallAsync(HardeningPlatform.MacOS, root, _runner));
        Assert.Equal([Path.Combine(root, "Library/LaunchDaemons/com.ollamacontinuity.gateway.plist")], uninstall.Steps.Select(s => s.Target));
        Assert.False(File.Exists(Path.Combine(root, "Library/LaunchDaemons/com.ollamacontinuity.gateway.plist")));

        // On the Mac itself: a loaded daemon is booted out before the new one is bootstrapped.
        var live = new RecordingCommandRunner().Answer("launchctl print", 0, "state = running");
        var plan = await GatewayServicePlanner.PlanInstallAsync(Mac() with { Port = 11600, TokensFile = "/Library/Application Support/OllamaContinuity/Gateway/t.json" }, live, _registry);
        Assert.Equal(
        [
            "write /Library/LaunchDaemons/com.ollamacontinuity.gateway.plist",
            "launchctl bootout system/com.ollamacontinuity.gateway",
            "/bin/mkdir -p /Library/Application Support/OllamaContinuity/Gateway",
            "/usr/sbin/chown -R nobody:nobody /Library/Application Support/OllamaContinuity/Gateway",
            "/bin/chmod 0700 /Library/Application Support/OllamaContinuity/Gateway",
            "launchctl enable system/com.ollamacontinuity.gateway",
            "launchctl bootstrap system /Library/LaunchDaemons/com.ollamacontinuity.gateway.plist",
        ], plan.Steps.Select(Line));
    }

    [Fact]
    public async Task Non_loopback_needs_Force_and_a_tokens_file_that_exists_and_holds_tokens_checked_before_anything_runs()
    {
        var forceless = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Bind = "0.0.0.0" }));
        Assert.Equal("NonLoopbackBindNeedsForce", forceless.ErrorId);

        var noTokens = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Bind = "0.0.0.0", Force = true }));
        Assert.Equal("TokensFileNotFound", noTokens.ErrorId);

        Directory.CreateDirectory(Path.Combine(_root, "etc/ollamacontinuity"));
        File.WriteAllText(Tokens, """{"tokens":[]}""");
        var empty = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Bind = "0.0.0.0", Force = true }));
        Assert.Equal("TokensFileEmpty", empty.ErrorId);

        var windows = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Windows() with { Bind = "10.0.0.5", Force = true }));
        Assert.Equal("TokensFileNotFound", windows.ErrorId);
        Assert.Empty(_runner.Commands);
        Assert.False(File.Exists(Unit));

        File.WriteAllText(Tokens, """{"tokens":[{"name":"app","token":"0123456789abcdefghijklmnop"}]}""");
        var forced = await Install(Linux() with { Bind = "0.0.0.0", Force = true });
        var unit = forced.Steps.OfType<WriteFileStep>().Single(w => w.Path == Unit).Content;
        Assert.Contains("--bind 0.0.0.0 --port 11435 --tokens-file %d/gateway-tokens --state-file %S/ollamacontinuity-gateway/gateway.json --force", unit);
        Assert.Contains(forced.Warnings, w => w.Contains("restrict port 11435", StringComparison.Ordinal));
        Assert.DoesNotContain(forced.Steps, s => s.Target == Tokens); // an existing tokens file is never replaced
    }

    [Theory]
    [InlineData("not-an-ip", 11435, "InvalidBindAddress")]
    [InlineData("127.0.0.1", 0, "InvalidPort")]
    public async Task Invalid_address_or_port_is_refused(string bind, int port, string errorId)
    {
        var e = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Bind = bind, Port = port }));
        Assert.Equal(errorId, e.ErrorId);
    }

    [Fact]
    public async Task A_key_with_a_line_break_is_refused_without_repeating_it_and_Windows_refuses_a_root()
    {
        var e = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux(key: "sk-test-LEAK\nInjected=1")));
        Assert.Equal("InvalidSetting", e.ErrorId);
        Assert.DoesNotContain("LEAK", e.Message + e.RecommendedAction);

        var root = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Windows() with { Root = _root }));
        Assert.Equal("RootNotSupported", root.ErrorId);
        var missing = await Assert.ThrowsAsync<HardeningValidationException>(() => Install(Linux() with { Root = Path.Combine(_root, "nope") }));
        Assert.Equal("RootNotFound", missing.ErrorId);
    }

    [SkippableFact]
    public async Task A_value_with_quotes_round_trips_through_the_settings_file_as_systemd_reads_it()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root stages Linux files");
        var odd = "it's \"quoted\" $HOME `x` \\ 100%";
        await Apply(await Install(Linux() with { Environment = new Dictionary<string, string> { ["CLOUD_MODEL"] = odd, ["CLOUD_API_KEY"] = Key } }));
        Assert.Equal(odd, SystemdService.Load(_root, GatewayServicePlanner.LinuxUnitName).Env("CLOUD_MODEL"));
    }

    [Fact]
    public async Task A_failing_service_manager_command_stops_the_executor_with_its_message()
    {
        _runner.Answer("systemctl daemon-reload", 1, "", "Failed to connect to bus");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            new GatewayServiceExecutor(_runner, _registry).ExecuteAsync(new RunCommandStep(CommandInvocation.Of("systemctl", "daemon-reload"), "Reload")));
        Assert.Contains("Failed to connect to bus", e.Message);
    }

    private static string Line(HardeningStep s) => s switch
    {
        RunCommandStep c => RecordingCommandRunner.Line(c.Command),
        WriteFileStep w => "write " + w.Path,
        RemoveServiceEnvironmentStep e => "registry-remove " + e.ServiceName + " " + string.Join('|', e.Names),
        RemoveFileStep f => "remove " + f.Path,
        _ => s.ToString()!,
    };
}
