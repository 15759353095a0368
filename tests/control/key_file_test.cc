#include "control/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "crypto/aead.h"

namespace triglav::ctl {
namespace {

struct KeyFileTest : ::testing::Test {
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    char tmpl[] = "/tmp/triglav-keyfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::ofstream(dir + "/" + name) << text;
    chmod((dir + "/" + name).c_str(), mode);
    return dir + "/" + name;
  }
  std::string error_of(const std::string& path) {
    try {
      load_key_file(path);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  std::string dir;
};

TEST_F(KeyFileTest, SaveLoadRoundTripWithMode0600) {
  ServerKeyFile kf;
  kf.key = crypto::KeyPair::generate();
  kf.addresses = {"192.0.2.1:7443", "[2001:db8::1]:7443"};
  const std::string path = dir + "/server.key";
  save_key_file(path, kf);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ServerKeyFile back = load_key_file(path);
  EXPECT_EQ(back.key.pub, kf.key.pub);
  EXPECT_EQ(back.addresses, kf.addresses);
  EXPECT_THROW(save_key_file(path, kf), std::runtime_error);  // never overwrites
}

TEST_F(KeyFileTest, RefusesAFileOthersCanRead) {
  ServerKeyFile kf;
  kf.key = crypto::KeyPair::generate();
  const std::string path = dir + "/server.key";
  save_key_file(path, kf);
  for (mode_t m : {0640, 0604, 0660, 0602}) {
    chmod(path.c_str(), m);
    const std::string e = error_of(path);
    EXPECT_NE(e.find("readable or writable by group or others"), std::string::npos) << e;
    EXPECT_NE(e.find("chmod 600 " + path), std::string::npos) << e;
  }
  chmod(path.c_str(), 0400);  // read-only for its owner is fine
  EXPECT_EQ(error_of(path), "");
}

TEST_F(KeyFileTest, ErrorsNameTheProblem) {
  EXPECT_NE(error_of(dir + "/missing").find("cannot read key file"), std::string::npos);
  EXPECT_NE(error_of(write("a", "private_key = \n")).find("line 1"), std::string::npos);
  EXPECT_NE(error_of(write("b", "addresses = []\n")).find("missing string 'private_key'"),
            std::string::npos);
  EXPECT_NE(error_of(write("c", "private_key = \"abc\"\n")).find("not 32 bytes"), std::string::npos);
  EXPECT_NE(error_of(write("d", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "colour = 1\n"))
                .find("unknown key 'colour'"),
            std::string::npos);
  EXPECT_NE(error_of(write("e", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "addresses = \"1.2.3.4:5\"\n"))
                .find("array of strings"),
            std::string::npos);
  EXPECT_NE(error_of(write("f", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "addresses = [1]\n"))
                .find("must hold strings"),
            std::string::npos);
  EXPECT_EQ(error_of(write("g", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n")), "");
}

}  // namespace
}  // namespace triglav::ctl
