using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// A real PowerShell 7.6 runspace in this process, with the built module imported from out/OllamaContinuity,
/// the way a user imports it. Only the engine's own cmdlets exist here (no Write-Output, Select-Object...).
/// </summary>
public sealed class ModuleSession : IDisposable
{
    public ModuleSession(bool import = true)
    {
        Host = new TestHost();
        var iss = InitialSessionState.CreateDefault2();
        Runspace = RunspaceFactory.CreateRunspace(Host, iss);
        Runspace.Open();
        if (import)
        {
            Invoke($"Import-Module -Name '{ManifestPath}' -Force -ErrorAction Stop");
            if (HadErrors || Streams!.Error.Count > 0)
            {
                throw new InvalidOperationException("Import-Module failed: " + string.Join("; ", Streams!.Error.Select(e => e.ToString())));
            }
        }
    }

    public TestHost Host { get; }
    public Runspace Runspace { get; }

    /// <summary>The last invocation's streams, copied before its PowerShell was disposed.</summary>
    public CapturedStreams? Streams { get; private set; }

    public bool HadErrors { get; private set; }

    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>
    /// The module laid out by the same configuration as this test assembly: out/OllamaContinuity for Release (what
    /// build.ps1 and users import), out/Debug/OllamaContinuity for Debug, so a Debug 'dotnet test' never replaces the
    /// Release module.
    /// </summary>
#if DEBUG
    public static string ModuleDirectory => Path.Combine(RepoRoot, "out", "Debug", "OllamaContinuity");
#else
    public static string ModuleDirectory => Path.Combine(RepoRoot, "out", "OllamaContinuity");
#endif

    public static string ManifestPath => Path.Combine(ModuleDirectory, "OllamaContinuity.psd1");

    /// <summary>Runs a script; parameters become variables of the same name (<c>$name</c>).</summary>
    public Collection<PSObject> Invoke(string script, IDictionary<string, object?>? variables = null)
    {
        using var ps = PowerShell.Create();
        ps.Runspace = Runspace;
        if (variables is not null)
        {
            foreach (var (k, v) in variables)
            {
                Runspace.SessionStateProxy.SetVariable(k, v);
            }
        }

        ps.AddScript(script);
        try
        {
            return ps.Invoke();
        }
        finally
        {
            Streams = new CapturedStreams(ps.Streams);
            HadErrors = ps.HadErrors;
        }
    }

    /// <summary>Runs a script in a PowerShell whose Stop() the caller can call (Ctrl+C).</summary>
    public PowerShell Create(string script)
    {
        var ps = PowerShell.Create();
        ps.Runspace = Runspace;
        ps.AddScript(script);
        return ps;
    }

    public void Dispose() => Runspace.Dispose();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OllamaContinuity.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("OllamaContinuity.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A copy of a PowerShell's streams.</summary>
public sealed class CapturedStreams
{
    public CapturedStreams(PSDataStreams s)
    {
        Error = s.Error.ToList();
        Warning = s.Warning.ToList();
        Verbose = s.Verbose.ToList();
        Debug = s.Debug.ToList();
        Information = s.Information.ToList();
        Progress = s.Progress.ToList();
    }

    public List<ErrorRecord> Error { get; }
    public List<WarningRecord> Warning { get; }
    public List<VerboseRecord> Verbose { get; }
    public List<DebugRecord> Debug { get; }
    public List<InformationRecord> Information { get; }
    public List<ProgressRecord> Progress { get; }
}
