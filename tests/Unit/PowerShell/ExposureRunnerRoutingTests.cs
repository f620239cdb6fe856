namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// The runner Test-OllamaExposure gives its local audit: cmdlet calls (Get-NetTCPConnection) go to the PowerShell
/// session, native programs (netstat.exe, manage-bde.exe, journalctl...) to the process runner. Reached through the
/// loaded module by reflection; both sides are the engine's scripted runners, so nothing runs.
/// </summary>
public sealed class ExposureRunnerRoutingTests : IDisposable
{
    private const string Setup = """
        $null = Test-OllamaExposure -Root $root -Port 11434  # loads the engine into the module's context
        $engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' }
        $scripted = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)
        $invocation = $engine.GetType('OllamaContinuity.Native.CommandInvocation', $true)
        $composite = (Get-Command Test-OllamaExposure).ImplementingType.Assembly.GetType('OllamaContinuity.Internal.CmdletOrProcessCommandRunner', $true)
        $session = $scripted::new()
        $process = $scripted::new()
        $runner = [System.Activator]::CreateInstance($composite, [object[]]@($session, $process))
        $run = $composite.GetMethod('RunAsync')
        foreach ($name in $names) {
            $null = $run.Invoke($runner, [object[]]@($invocation::Of($name, [string[]]@('-x')), [System.Threading.CancellationToken]::None)).GetAwaiter().GetResult()
        }
        """;

    private readonly ModuleSession _s = new();
    private readonly string _root = OllamaContinuity.TestSupport.TestPaths.New("routing");

    public void Dispose()
    {
        _s.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void Cmdlet_names_go_to_the_session_and_programs_to_the_process_runner()
    {
        Directory.CreateDirectory(Path.Combine(_root, "etc"));
        string[] names = ["Get-NetTCPConnection", "netstat.exe", "manage-bde.exe", "sc.exe", "journalctl", "iptables-save", "manage-bde", "get-nettcpconnection", "Get-NetFirewallRule"];
        _s.Invoke(Setup, new Dictionary<string, object?> { ["root"] = _root, ["names"] = names });
        Assert.Empty(_s.Streams!.Error);
        Assert.Equal(["Get-NetTCPConnection -x", "Get-NetFirewallRule -x"], _s.Invoke("$session.CommandLines").Select(o => o.ToString()));
        Assert.Equal(["netstat.exe -x", "manage-bde.exe -x", "sc.exe -x", "journalctl -x", "iptables-save -x", "manage-bde -x", "get-nettcpconnection -x"],
            _s.Invoke("$process.CommandLines").Select(o => o.ToString()));
    }
}
