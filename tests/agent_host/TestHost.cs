// Test-only: drives the agent core under mono, one command line in, one line out, with a
// stand-in for the Windows calls (WindowsApi) that records every call it receives.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Web.Script.Serialization;
using Microsoft.Win32;
using Pushinstall.Agent;

namespace Pushinstall.TestHost
{
    public class FakeWindows : WindowsApi
    {
        public readonly List<object> Calls = new List<object>();
        public readonly Queue<int> ToolExits = new Queue<int>();
        public readonly HashSet<string> Protected = new HashSet<string>();
        public int ShareCode;
        public bool Sccm;
        public bool MutexHeld;
        public readonly List<string> Processes = new List<string>();
        public string Drivers = Environment.GetEnvironmentVariable("PUSHINSTALL_TEST_DRIVERS") ?? "/nonexistent";

        private void Record(params object[] call)
        {
            Calls.Add(call);
        }

        // WOW64 redirection as Windows does it: mono's registry has one view
        public override RegistryKey OpenBaseKey(RegistryHive hive, string view, ref string subKey)
        {
            bool software = subKey.Equals("SOFTWARE", StringComparison.OrdinalIgnoreCase)
                || subKey.StartsWith("SOFTWARE\\", StringComparison.OrdinalIgnoreCase);
            bool already = subKey.StartsWith("SOFTWARE\\WOW6432Node", StringComparison.OrdinalIgnoreCase);
            if (view == "32" && hive == RegistryHive.LocalMachine && software && !already)
            {
                subKey = "SOFTWARE\\WOW6432Node" + subKey.Substring("SOFTWARE".Length);
            }
            return RegistryKey.OpenBaseKey(hive, RegistryView.Default);
        }

        public override long FreeBytes(string path)
        {
            return new DriveInfo("/").AvailableFreeSpace;
        }

        public override DriveInfo Drive(string letter)
        {
            return letter.ToUpperInvariant() == "C" ? new DriveInfo("/") : null;
        }

        public override string DriversDirectory()
        {
            return Drivers;
        }

        public override void ProtectSecretFile(string path)
        {
            Record("ProtectSecretFile", Path.GetFileName(path).Split('.')[0]);
            Protected.Add(Path.GetFileName(path).Split('.')[0]);
        }

        public override void ProtectDirectory(string path)
        {
            Record("ProtectDirectory", path);
        }

        public override bool IsSecretFileProtected(string path)
        {
            return Protected.Contains(Path.GetFileName(path).Split('.')[0]);
        }

        public override int ConnectShare(string remoteName, string username, string password)
        {
            Record("ConnectShare", remoteName, username, password);
            return ShareCode;
        }

        public override int DisconnectShare(string remoteName)
        {
            Record("DisconnectShare", remoteName);
            return 0;
        }

        private static List<int> Children(int pid)
        {
            List<int> found = new List<int>();
            foreach (string dir in Directory.GetDirectories("/proc"))
            {
                int child;
                if (!int.TryParse(Path.GetFileName(dir), out child))
                {
                    continue;
                }
                try
                {
                    string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    string[] fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
                    if (int.Parse(fields[1]) == pid)
                    {
                        found.Add(child);
                    }
                }
                catch (IOException)
                {
                }
            }
            return found;
        }

        private static void KillTree(int pid)
        {
            foreach (int child in Children(pid))
            {
                KillTree(child);
            }
            Process.Start("kill", "-9 " + pid).WaitForExit();
        }

        // what taskkill /T /F does on Windows
        public override void KillProcessTree(Process process)
        {
            Record("KillProcessTree");
            KillTree(process.Id);
        }

        public override DateTime BootTime()
        {
            foreach (string line in File.ReadAllLines("/proc/stat"))
            {
                if (line.StartsWith("btime "))
                {
                    return new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(long.Parse(line.Substring(6)));
                }
            }
            throw new InvalidOperationException("no btime");
        }

        public override bool SccmRebootPending()
        {
            Record("SccmRebootPending");
            return Sccm;
        }

        private const string Services = "HKLM:\\SYSTEM\\CurrentControlSet\\Services";

        // services as registry keys: DisplayName, and the status in a test-only value
        public override ServiceInfo FindService(string name)
        {
            using (RegistryKey root = RegistryOp.Open(Services))
            {
                if (root == null)
                {
                    return null;
                }
                foreach (bool byDisplay in new bool[] { false, true })
                {
                    foreach (string sub in root.GetSubKeyNames())
                    {
                        using (RegistryKey key = root.OpenSubKey(sub))
                        {
                            string display = key.GetValue("DisplayName", "") as string;
                            string status = key.GetValue("TestStatus", null) as string;
                            string compared = byDisplay ? display : sub;
                            if (status != null && string.Equals(compared, name, StringComparison.OrdinalIgnoreCase))
                            {
                                ServiceInfo info = new ServiceInfo();
                                info.Name = sub;
                                info.DisplayName = display;
                                info.Status = status;
                                return info;
                            }
                        }
                    }
                }
            }
            return null;
        }

        public override void SetStartMode(string name, string mode)
        {
            Record("SetStartMode", name, mode);
            using (RegistryKey key = RegistryOp.Open(Services + "\\" + name, "64", true, false))
            {
                int start = mode == "Manual" ? 3 : mode == "Disabled" ? 4 : 2;
                key.SetValue("Start", start, RegistryValueKind.DWord);
                key.SetValue("DelayedAutostart", mode == "AutomaticDelayed" ? 1 : 0, RegistryValueKind.DWord);
            }
        }

        public override void SetServiceState(string name, bool running, int timeoutS)
        {
            Record("SetServiceState", name, running, timeoutS);
            using (RegistryKey key = RegistryOp.Open(Services + "\\" + name, "64", true, false))
            {
                if ((key.GetValue("TestStartFails", 0) as int? ?? 0) == 1 && running)
                {
                    throw new OpException("ServiceFailed", name + " did not reach Running within " + timeoutS + " s (status Stopped): test");
                }
                key.SetValue("TestStatus", running ? "Running" : "Stopped");
            }
        }

        // the Windows Installer's mutex and the process list, as a test sets them (INSTALLER)
        public override bool NamedMutexExists(string name)
        {
            Record("NamedMutexExists", name);
            return MutexHeld;
        }

        public override List<string> OtherProcessNames()
        {
            return new List<string>(Processes);
        }

        // ---- the Task Scheduler, a stand-in for Windows: a registered task is recorded, and
        // RunTask starts its program as a child process of this user under mono where Windows
        // would start it as SYSTEM in its working directory. It runs in the test root instead,
        // where a UNC path is a file of that name (a backslash is a name character here).
        private readonly Dictionary<string, string> tasks = new Dictionary<string, string>();
        private readonly Dictionary<string, Process> running = new Dictionary<string, Process>();

        public override string TaskRoot()
        {
            return Environment.CurrentDirectory;
        }

        public override void CreateProtectedDirectory(string path)
        {
            Record("CreateProtectedDirectory", path);
            Directory.CreateDirectory(path);
        }

        public override void RegisterSystemTask(string name, string path, string workingDirectory, long limitS)
        {
            Record("RegisterSystemTask", name, path, workingDirectory, limitS);
            tasks[name] = path;
        }

        public override void RunTask(string name)
        {
            // what the task is given, read as it starts: the data file beside the worker
            string data = File.ReadAllText(Path.Combine(Path.GetDirectoryName(tasks[name]), "request.json"));   // SystemTask.RequestFile
            Record("RunTask", name, new JavaScriptSerializer().DeserializeObject(data));
            ProcessStartInfo info = new ProcessStartInfo("mono", "\"" + tasks[name] + "\"");
            info.UseShellExecute = false;
            running[name] = Process.Start(info);
        }

        public override ScheduledTaskStatus GetTaskStatus(string name)
        {
            ScheduledTaskStatus status = new ScheduledTaskStatus();
            Process process;
            if (!running.TryGetValue(name, out process))
            {
                status.State = 3;
                status.LastResult = 0x41303;
            }
            else if (!process.HasExited)
            {
                status.State = 4;
                status.LastResult = 0x41301;
            }
            else
            {
                status.State = 3;
                status.LastResult = process.ExitCode;
            }
            return status;
        }

        public override void StopTask(string name)
        {
            Record("StopTask", name);
            KillTree(running[name].Id);
            running[name].WaitForExit();
        }

        public override void DeleteTask(string name)
        {
            Record("DeleteTask", name);
            tasks.Remove(name);
            running.Remove(name);
        }

        public override ToolResult RunTool(string file, string[] arguments)
        {
            Record("RunTool", file, arguments);
            ToolResult result = new ToolResult();
            result.ExitCode = ToolExits.Count > 0 ? ToolExits.Dequeue() : 0;
            result.Output = "";
            return result;
        }
    }

    public static class Program
    {
        // Commands, one a line: REQUEST <base64>, KEY, QUOTE <base64 JSON list>, CALLS,
        // TOOLEXIT <code>..., SHARE <code>, SCCM <0|1>, OPS, KINDS, SCRIPT <0|1>,
        // INSTALLER <mutex 0|1> [process name]..., PSVERSION <version>,
        // CACHE <folder> <name> <base64> (Cache.Store), CACHEDLL <folder> <source> <base64>,
        // GUNZIP <base64> (the bytes bootstrap.ps1's GZipStream gives, as base64),
        // RESET <root> (a clean host for the next test: Reset)
        // RECEIVE <path> (the push stream: a request line and its bytes, read from the file)
        // HKLM, HKU and HKCR live under MONO_REGISTRY_PATH (the host's own); HKCU under $HOME,
        // which AgentHost points into the host's root too
        private static readonly RegistryHive[] Hives = {
            RegistryHive.LocalMachine, RegistryHive.Users, RegistryHive.ClassesRoot, RegistryHive.CurrentUser };

        // what a new test host starts with: a new stand-in (no calls, queued exits, tasks,
        // protected files), PowerShell 5.1, the run's cache folder
        private static FakeWindows Fresh(string drivers)
        {
            FakeWindows windows = new FakeWindows();
            windows.TaskPollMilliseconds = 50;
            windows.Drivers = drivers;
            Core.Windows = windows;
            Core.PowerShellVersion = "5.1.0.0";
            // the modules a session compiles are cached here (PUSHINSTALL_TEST_CACHE: shared by the
            // test processes of a machine, as sessions on a target share its cache)
            string cache = Environment.GetEnvironmentVariable("PUSHINSTALL_TEST_CACHE");
            if (cache != null)
            {
                Cache.Folder = cache;
            }
            return windows;
        }

        // RESET <root>: this process as a new one would start for the next test, but for the
        // modules it loaded and its key pair: the stand-in as Fresh makes it, every registry key
        // and value deleted (through the registry API, so that mono's key cache forgets them
        // too), the working directory (TaskRoot) and the drivers directory in `root`
        private static FakeWindows Reset(string root)
        {
            foreach (RegistryHive hive in Hives)
            {
                using (RegistryKey top = RegistryKey.OpenBaseKey(hive, RegistryView.Default))
                {
                    foreach (string name in top.GetSubKeyNames())
                    {
                        top.DeleteSubKeyTree(name);
                    }
                    foreach (string name in top.GetValueNames())
                    {
                        top.DeleteValue(name);
                    }
                }
            }
            Directory.SetCurrentDirectory(root);
            return Fresh(Path.Combine(root, "drivers"));
        }

        public static int Main(string[] argv)
        {
            FakeWindows windows = Fresh(Environment.GetEnvironmentVariable("PUSHINSTALL_TEST_DRIVERS") ?? "/nonexistent");
            // as the shim sets it from $PushinstallAgentCore
            string source = Environment.GetEnvironmentVariable("PUSHINSTALL_TEST_CORE_SOURCE");
            Core.Source = source == null ? null : File.ReadAllText(source, Encoding.UTF8);
            JavaScriptSerializer json = new JavaScriptSerializer();
            json.MaxJsonLength = int.MaxValue;
            TextReader input = new StreamReader(Console.OpenStandardInput(), new UTF8Encoding(false));
            TextWriter output = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
            string line;
            while ((line = input.ReadLine()) != null)
            {
                int space = line.IndexOf(' ');
                string command = space < 0 ? line : line.Substring(0, space);
                string rest = space < 0 ? "" : line.Substring(space + 1);
                string answer;
                switch (command)
                {
                    case "REQUEST":
                        answer = Core.Invoke(rest);
                        break;
                    case "RECEIVE":
                        // the push stream receiver.ps1 hands the core, read from a file here
                        using (FileStream stream = File.OpenRead(rest))
                        {
                            answer = Core.Receive(stream);
                        }
                        break;
                    case "RESET":
                        windows = Reset(rest);
                        answer = Json.Write(rest);   // a reply the caller can tell from a stale one
                        break;
                    case "KEY":
                        answer = Sealed.PublicKey();
                        break;
                    case "QUOTE":
                        object[] items = (object[])json.DeserializeObject(Encoding.UTF8.GetString(Convert.FromBase64String(rest)));
                        answer = Json.Write(ProcessOp.Join(Array.ConvertAll(items, item => (string)item)));
                        break;
                    case "CALLS":
                        answer = Json.Write(windows.Calls);
                        windows.Calls.Clear();
                        break;
                    case "TOOLEXIT":
                        foreach (string code in rest.Split(' '))
                        {
                            windows.ToolExits.Enqueue(int.Parse(code));
                        }
                        answer = "null";
                        break;
                    case "SHARE":
                        windows.ShareCode = int.Parse(rest);
                        answer = "null";
                        break;
                    case "SCCM":
                        windows.Sccm = rest == "1";
                        answer = "null";
                        break;
                    case "INSTALLER":
                        string[] words = rest.Split(new char[] { ' ' }, StringSplitOptions.RemoveEmptyEntries);
                        windows.MutexHeld = words.Length > 0 && words[0] == "1";
                        windows.Processes.Clear();
                        for (int i = 1; i < words.Length; i++)
                        {
                            windows.Processes.Add(words[i]);
                        }
                        answer = "null";
                        break;
                    case "PSVERSION":
                        Core.PowerShellVersion = rest;
                        answer = "null";
                        break;
                    case "CACHE":
                        string[] store = rest.Split(' ');
                        answer = Json.Write(Cache.Store(store[0], store[1], Convert.FromBase64String(store[2])));
                        break;
                    case "CACHEDLL":
                        string[] dll = rest.Split(' ');
                        Cache.Folder = dll[0];
                        answer = Json.Write(Cache.StoreAssembly(dll[1], Convert.FromBase64String(dll[2])));
                        break;
                    case "GUNZIP":
                        using (MemoryStream expanded = new MemoryStream())
                        {
                            new System.IO.Compression.GZipStream(new MemoryStream(Convert.FromBase64String(rest)), System.IO.Compression.CompressionMode.Decompress).CopyTo(expanded);
                            answer = Json.Write(Convert.ToBase64String(expanded.ToArray()));
                        }
                        break;
                    case "OPS":
                        answer = Json.Write(Core.OpNames());
                        break;
                    case "KINDS":
                        answer = Json.Write(Facts.KindNames());
                        break;
                    default:
                        answer = "\"unknown command\"";
                        break;
                }
                output.WriteLine(answer);
                output.Flush();
            }
            return 0;
        }
    }
}
